"""Readers of published weights into the zoo's models: the authors' DnCNN (dncnn), Keras VGG19 (vgg)."""
