"""Inbound channels: one adapter package per outside system (its payload readers, its client
for calls back, later its routes). A channel turns the system's documents into what the
services act on and never writes to the database around them."""
