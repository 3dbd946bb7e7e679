"""payrelay: a gateway-confirmed payment marks its order PAID exactly once, under failure."""

__version__ = "0.1.0"
