"""The one exception type a user should ever see: bad input, said in one line."""


class InputError(ValueError):
    """Bad input that the user can fix.

    The message names the file (or option), the problem and the fix, on one line. The command
    layer prints it to stderr without a traceback and exits with status 2.
    """

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
