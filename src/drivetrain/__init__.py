"""Drivetrain: an open, self-hostable cloud for software-defined vehicles."""

__version__ = "0.1.0"
