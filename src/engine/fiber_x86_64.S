/*
 * The x86-64 (System V) context switch for fibers. Only what the ABI says a
 * call preserves is saved: rbx, rbp, r12-r15, the stack pointer, and the
 * control bits of MXCSR and the x87 control word. The signal mask is not
 * touched (that is what makes glibc's swapcontext ~80x slower here: two
 * rt_sigprocmask system calls per switch).
 *
 * Not compatible with a CET shadow stack (the `ret` returns into another
 * stack), so this file deliberately carries no GNU property note: a binary
 * linking it is not marked SHSTK-compatible.
 */
    .text

/* void eryx__ctx_swap(void **save, void *to)
 * Pushes the callee-saved state, stores rsp to *save, loads `to` as rsp and
 * pops the state saved there. */
    .globl eryx__ctx_swap
    .hidden eryx__ctx_swap
    .type eryx__ctx_swap, @function
    .p2align 4
eryx__ctx_swap:
    .cfi_startproc
    pushq %rbp
    .cfi_adjust_cfa_offset 8
    pushq %rbx
    .cfi_adjust_cfa_offset 8
    pushq %r12
    .cfi_adjust_cfa_offset 8
    pushq %r13
    .cfi_adjust_cfa_offset 8
    pushq %r14
    .cfi_adjust_cfa_offset 8
    pushq %r15
    .cfi_adjust_cfa_offset 8
    subq $8, %rsp
    .cfi_adjust_cfa_offset 8
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .cfi_endproc
    .size eryx__ctx_swap, .-eryx__ctx_swap

/* The first `ret` into a new context lands here with the entry function in
 * r12 and its argument in r13 (see ctx_init in fiber.c), rsp 16-aligned.
 * The entry never returns. rip is marked undefined so that debuggers and
 * unwinders stop here instead of walking into garbage. */
    .globl eryx__ctx_start
    .hidden eryx__ctx_start
    .type eryx__ctx_start, @function
    .p2align 4
eryx__ctx_start:
    .cfi_startproc
    .cfi_undefined rip
    xorl %ebp, %ebp
    movq %r13, %rdi
    callq *%r12
    ud2
    .cfi_endproc
    .size eryx__ctx_start, .-eryx__ctx_start

    .section .note.GNU-stack,"",@progbits
