"""The pure core: state machines, events, money. Imports only the standard library."""
