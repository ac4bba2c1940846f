/* An exactly countable workload: each run from odl_idle executes 5 + 2 * iterations instructions
   (bx lr, ldr, ldr, then the subs/bne pair per iteration, then b and bl). */
    .syntax unified
    .cpu cortex-m4
    .thumb

    .bss
    .align 2
    .global iterations
iterations:
    .space 4

    .text
    .thumb_func
    .global main
main:
run:
    bl odl_idle
    ldr r1, =iterations
    ldr r0, [r1]
loop:
    subs r0, r0, #1
    bne loop
    b run
