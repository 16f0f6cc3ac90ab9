class CreditError(ValueError):
    """Credits refuse the operation; the message says why, with the figures."""


class BudgetExceeded(CreditError):
    """A monthly cap or member limit would be crossed."""
