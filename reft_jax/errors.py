"""The one exception type for mistakes a user can fix (bad paths, configs, records).

`reft_jax.main` prints these as a single line and exits non-zero; anything else is a bug and
keeps its traceback.
"""


class ReftError(ValueError):
    """A user-facing error whose message says what is wrong and what is accepted."""
