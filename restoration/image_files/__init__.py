"""Users' image files: `reading` (the one decoder, also for the data sources) and `writing`."""
