"""The booking rules and everything that changes data: the one layer that views,
the API, jobs and the CLI all call. Services raise DomainError and never commit."""
