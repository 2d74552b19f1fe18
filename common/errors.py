"""The base of the errors Revoca's parts report to their callers.

Every error has a stable ``code`` (the REST API and the logs carry it) and a
message that describes the problem, in terms of the problem (never of a
command to type: each front end, the CLI's exit codes and hints and the
REST API's statuses, maps codes to its own terms). The store, the CA and the RA subclass it,
so one ``except RevocaError`` catches whatever any of them refuses.
"""


class RevocaError(Exception):
    # The base's code predates this module (it was the CA's); kept for API clients.
    code = "ca_error"
    # How the audit log records an operation that ends with this error:
    # "refused" (the request was not allowed, or not valid) or "error".
    refused = False

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
