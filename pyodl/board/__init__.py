"""Running the firmware: the :class:`~pyodl.board.base.Board` interface and its backends (the Unicorn
STM32L496 model, Renode), and the transports that carry commands to it (RAM mailbox, UART frames)."""
