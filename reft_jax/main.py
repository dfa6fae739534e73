"""Command line: `python -m reft_jax.main --config=configs/gsm8k.py [--config.key=value ...]`.

Runs the stages named in `config.stages` in order. Mistakes a user can fix (a bad key, a bad
value, a missing file) end in one line on stderr and exit status 2, with no traceback.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from reft_jax.config_check import validate
from reft_jax.errors import ReftError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py).",
                                          lock_config=True)


def run(config) -> None:
    from reft_jax.parallel import watchdog
    from reft_jax.parallel.hosts import initialize

    initialize(config.distributed)  # before anything asks JAX about devices
    try:
        run_stages(config)
    except BaseException:
        # An error on this process alone (a file only it reads, its device out of memory, before
        # or inside a stage's loop): the others stop now instead of waiting in a collective.
        watchdog.mark_failed()
        raise


def run_stages(config) -> None:
    from reft_jax.init_stage import resolve_model_source
    from reft_jax.stages import STAGES, describe
    from reft_jax.train.loop import stopped_early

    resolve_model_source(config)
    names = validate(config, STAGES)
    missing = [n for n in names if STAGES[n] is None]
    print(f"stages: {describe()}")
    if missing:
        raise ReftError(f"stage(s) {', '.join(missing)} not built yet; built stages: "
                        + ", ".join(n for n, fn in STAGES.items() if fn))
    for name in names:
        print(f"== stage {name} ==")
        STAGES[name](config)
        if stopped_early():
            later = names[names.index(name) + 1:]
            if later:
                print(f"stage {name} stopped before its end; not running {', '.join(later)}")
            return


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)
    try:
        config = _CONFIG.value
        if config is not None:
            config.keys()  # forces the lazy load, so a missing file is reported here
    except OSError as err:  # ml_collections loads the file lazily and reports it here
        print(f"error: {_one_line(err)}", file=sys.stderr)
        sys.exit(2)
    if config is None:
        raise app.UsageError("--config=configs/<name>.py is required")
    try:
        run(config)
    except ReftError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def _one_line(err: BaseException) -> str:
    text = str(err).replace("\\n", "\n").replace("\\'", "'")
    return " ".join(line.strip(" '\"") for line in text.splitlines() if line.strip(" '\""))


def _parse_flags(argv):
    """absl's flag parsing, with an unknown key or a wrong type reported in one line."""
    try:
        return flags.FLAGS(argv)
    except (flags.Error, KeyError, TypeError, ValueError, AttributeError) as err:
        if (raised := _config_file_error(err)) is not None:
            print(f"error: {raised}", file=sys.stderr)
            sys.exit(2)
        bad = [a for a in argv[1:] if a.startswith("--config.")]
        print(f"error: bad config override ({' '.join(bad) or 'none'}): {_one_line(err)}",
              file=sys.stderr)
        sys.exit(2)


def _config_file_error(err: BaseException) -> ReftError | None:
    """The ReftError a config file's `get_config` raised (e.g. a bad cell of configs/paper.py:
    ...), found under the two wrappers ml_collections and absl put around it, or None."""
    found = None
    while err is not None:
        if isinstance(err, ReftError):
            found = err
        err = err.__cause__ or err.__context__
    return found


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
