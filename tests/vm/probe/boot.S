/* Multiboot (v1) header and entry: QEMU's -kernel loads this ELF the way it loads Barrelfish's loader. */
        .set MB_MAGIC, 0x1BADB002
        .set MB_FLAGS, 0x00000003          /* page-align modules, provide memory info */
        .section .multiboot, "a"
        .align 4
        .long MB_MAGIC
        .long MB_FLAGS
        .long -(MB_MAGIC + MB_FLAGS)

        .section .text
        .global _start
_start:
        mov $stack_top, %esp
        push %ebx                           /* multiboot information */
        push %eax                           /* loader magic: 0x2BADB002 */
        call probe_main
halt:   cli
        hlt
        jmp halt

        .section .bss
        .align 16
        .skip 16384
stack_top:

        .section .note.GNU-stack, "", @progbits
