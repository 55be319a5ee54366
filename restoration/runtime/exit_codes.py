"""Exit statuses of `launch.py`: what a job script can tell apart (also listed in README).

  0    done
  1    unexpected error (a bug): Python's traceback; restore mode: some inputs failed (listed)
  2    usage: bad flags, config, data or workdir (fix the command; nothing was started)
  3    diverged: NaN/inf loss or state; the last finite checkpoint is kept (see the message:
       lower the learning rate, resume from an earlier step with --step=N)
  4    workdir in use by another live run (wait for it, or use another --workdir)
  5    no intact checkpoint: every one failed its checks and was moved to <workdir>/broken/
  6    disk / I/O error: a save or write failed (disk full, quota, read-only or vanished
       storage); free space and rerun the same command: it resumes from the last checkpoint
  130  preempted by SIGINT (Ctrl-C), 143 preempted by SIGTERM (scancel, preemption): the step
       reached was checkpointed; rerun the same command to resume (requeue on these)

Every status but 0, 1, 130 and 143 ends with exactly one `error: ...` line on stderr; `--debug`
adds the traceback (the status stays the same). An exception class states its status as a
class attribute `exit_status`; `status_of` maps the rest.
"""

from __future__ import annotations

import errno

DONE = 0
FAILED = 1
USAGE = 2
DIVERGED = 3
WORKDIR_IN_USE = 4
NO_INTACT_CHECKPOINT = 5
IO_ERROR = 6
PREEMPTED_SIGINT = 130
PREEMPTED_SIGTERM = 143

# Exceptions whose message is all a user needs: bad flags, config, data or workdir.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError)
# OSErrors of the storage rather than of a path the user named.
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ESTALE,
                   errno.EFBIG}


def status_of(error: BaseException) -> int | None:
  """The exit status of `error`, or None for an unexpected one (shown with its traceback)."""
  explicit = getattr(error, "exit_status", None)
  if isinstance(explicit, int):
    return explicit
  if isinstance(error, OSError) and (error.errno in _STORAGE_ERRNOS
                                     or not isinstance(error, USER_ERRORS)):
    return IO_ERROR
  if isinstance(error, USER_ERRORS):
    return USAGE
  return None
