/* Minimal reset path shared by the board fixtures: copy .data, zero .bss, enable the FPU, run main, then
   park in the odl_idle loop like the real firmware's command loop does. Assembly, so that no compiler can
   slip a VFP instruction in ahead of the CPACR write. */
    .syntax unified
    .cpu cortex-m4
    .thumb

    .section .isr_vector, "a"
    .word _estack
    .word Reset_Handler
    .word fault
    .word fault

    .text
    .thumb_func
    .global Reset_Handler
Reset_Handler:
    ldr r0, =_sidata
    ldr r1, =_sdata
    ldr r2, =_edata
1:  cmp r1, r2
    bhs 2f
    ldr r3, [r0], #4
    str r3, [r1], #4
    b 1b
2:  ldr r1, =_sbss
    ldr r2, =_ebss
    movs r3, #0
3:  cmp r1, r2
    bhs 4f
    str r3, [r1], #4
    b 3b
4:
#ifndef SKIP_CPACR
    ldr r0, =0xE000ED88
    ldr r1, [r0]
    orr r1, r1, #(0xF << 20)
    str r1, [r0]
    dsb
    isb
#endif
    bl main
5:  bl odl_idle
    b 5b

    .thumb_func
    .global odl_idle
odl_idle:
    bx lr

    .thumb_func
fault:
    b fault
