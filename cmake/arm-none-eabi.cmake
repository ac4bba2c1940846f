# Cross-compiling for the STM32L496 (Cortex-M4F, single-precision FPU, hard-float ABI).
# Use: cmake -S . -B build-arm -DCMAKE_TOOLCHAIN_FILE=cmake/arm-none-eabi.cmake
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

find_program(ODL_ARM_GCC arm-none-eabi-gcc)
if(NOT ODL_ARM_GCC)
  message(FATAL_ERROR "arm-none-eabi-gcc not found: install the Debian packages gcc-arm-none-eabi and "
                      "libnewlib-arm-none-eabi (sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi, "
                      "or run ./scripts/setup.sh)")
endif()
# gcc prints the bare name back when it has no such library for this multilib.
execute_process(COMMAND ${ODL_ARM_GCC} -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16
                        -print-file-name=libc_nano.a OUTPUT_VARIABLE ODL_NEWLIB OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT IS_ABSOLUTE "${ODL_NEWLIB}" OR NOT EXISTS "${ODL_NEWLIB}")
  message(FATAL_ERROR "newlib for arm-none-eabi not found: install the Debian package libnewlib-arm-none-eabi")
endif()

set(CMAKE_C_COMPILER ${ODL_ARM_GCC})
get_filename_component(ODL_ARM_BIN "${ODL_ARM_GCC}" DIRECTORY)
set(CMAKE_SIZE "${ODL_ARM_BIN}/arm-none-eabi-size" CACHE FILEPATH "arm-none-eabi-size")
# The compiler check would try to link a hosted program; a static library needs no startup code.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(ODL_ARM_FLAGS "-mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard")
# -falign-loops=4: a loop head on a word boundary, so the taken branch back to it never refills from a
# 32-bit instruction split across two words (the TRM's P of 1 to 3 depends on it).
set(CMAKE_C_FLAGS_INIT "${ODL_ARM_FLAGS} -ffunction-sections -fdata-sections -falign-loops=4")
set(CMAKE_EXE_LINKER_FLAGS_INIT "${ODL_ARM_FLAGS} --specs=nano.specs --specs=nosys.specs -nostartfiles -Wl,--gc-sections")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
