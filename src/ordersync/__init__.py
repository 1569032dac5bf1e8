"""ordersync: one order stream and one stock ledger for a retail network."""

__version__ = "0.1.0"
