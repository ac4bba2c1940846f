"""Toolchains: the firmware's sources and headers, the arm-none-eabi firmware build, the host library build."""
