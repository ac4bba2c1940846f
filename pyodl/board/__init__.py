"""Boards that run the pyodl firmware: the Unicorn STM32L496 model, Renode, a real board over serial."""
