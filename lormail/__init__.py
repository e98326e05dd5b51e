"""lormail: plans, sends and calendars the e-mails around letters of recommendation."""

__version__ = "0.1.0"
