# pyodl's side of Renode's monitor: IronPython 2.7, run by `include @pyodl_monitor.py` in the monitor's own
# Python scope (pyodl.board.renode does it once per machine it creates).
#
# Why: every monitor command the host sends is a round trip (under renode-test, Robot's `Execute Command`
# through the keyword server: ~7 ms each), and a command to the firmware took about eleven of them (writes,
# the un-halt, RunFor slices, halt queries, instruction counts, the PC, reads), and a UART frame hundreds of
# `WriteChar`s that the monitor's tokenizer parses in time quadratic in the line. `pyodl_transact` does a
# whole exchange with the board in one round trip: the host lists its steps in a file, the bytes to write in
# a second one, and gets the bytes it read back in a third.
#
# Steps, one per line of the request file:
#   W address offset length           write `length` bytes of the blob from `offset` at `address`
#   R address length                  read `length` bytes at `address`, appended to the response file
#   U uart cr1 offset length          queue bytes of the blob on the UART's receive line, if its CR1 (read at
#                                     address `cr1`) has UE and RE set (else the model drops them unlogged)
#   X budget first growth last idle   un-halt the CPU and run RunFor slices (`first` instructions, then
#                                     `growth` times more, at most `last`) until the core halts (the hooks at
#                                     odl_idle and the fault handler) or `budget` instructions are granted
# Printed, one line per X: `ran EXECUTED PC` (halted at odl_idle), `stopped EXECUTED PC` (halted elsewhere:
# the steps after it are skipped) or `budget EXECUTED PC` (likewise); after a U whose receiver is off:
# `rx-off CR1` (likewise).
#
# The .NET names come from Renode; tests/board/fixtures/unicorn_monitor.py runs this file under CPython with
# the same names standing for the Unicorn board.
try:
    import System
    from System.IO import File
    from Antmicro.Renode.Time import TimeInterval
except ImportError:  # CPython: the names are given
    pass


def _run(cpu, emulation, budget, first, growth, last, idle):
    mips = int(cpu.PerformanceInMips)
    start = int(cpu.ExecutedInstructions)
    cpu.IsHalted = False
    granted = 0
    slice_ = first
    while granted < budget:
        step = min(slice_, budget - granted)
        micros = (step + mips - 1) // mips  # whole microseconds: Renode's time-to-instructions step is exact
        emulation.RunFor(TimeInterval.FromMicroseconds(System.UInt64(micros)))
        granted += micros * mips
        if cpu.IsHalted:
            break
        slice_ = min(growth * slice_, last)
    pc = int(cpu.PC.RawValue)
    executed = int(cpu.ExecutedInstructions) - start
    if not cpu.IsHalted:
        return "budget %d 0x%x" % (executed, pc)
    return "%s %d 0x%x" % ("ran" if pc == idle else "stopped", executed, pc)


def pyodl_transact(request, blob, response):
    machine = monitor.Machine
    bus = machine.SystemBus
    cpu = machine["sysbus.cpu"]
    emulation = emulationManager.CurrentEmulation
    data = File.ReadAllBytes(blob)
    with open(request) as f:
        steps = [line.split() for line in f.read().splitlines() if line.strip()]
    out = File.Create(response)
    try:
        for step in steps:
            numbers = [int(word, 0) for word in step[1:] if word[0].isdigit()]
            if step[0] == "W":
                bus.WriteBytes(data, System.UInt64(numbers[0]), System.Int32(numbers[1]), System.Int64(numbers[2]))
            elif step[0] == "R":
                read = bus.ReadBytes(System.UInt64(numbers[0]), System.Int32(numbers[1]))
                out.Write(read, 0, numbers[1])
            elif step[0] == "U":
                cr1 = int(bus.ReadDoubleWord(System.UInt64(numbers[0])))
                if cr1 & 0b101 != 0b101:
                    print("rx-off 0x%x" % cr1)
                    return
                uart = machine[step[1]]
                for i in range(numbers[1], numbers[1] + numbers[2]):
                    uart.WriteChar(data[i])
            elif step[0] == "X":
                result = _run(cpu, emulation, *numbers)
                print(result)
                if not result.startswith("ran"):
                    return
            else:
                raise ValueError("pyodl_transact: unknown step %r" % " ".join(step))
    finally:
        out.Close()
