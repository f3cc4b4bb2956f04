# Appended to CPython's Makefile by guest/wasm_pgo.sh for the profiled WASI
# build: the interpreter's hot files are compiled to bitcode, so that the
# link (python.wasm's here, guest.wasm's in guest/build.sh) optimises them
# across files with the profile (ThinLTO), as native CPython's --with-lto
# does for all of it. Only these: a call from the eval loop or one object
# type into another's small function (_PyLong_Add, PyObject_GetIter,
# _PyObject_GC_Link) is inlined where it is hot, while an LTO of the whole
# of CPython cost each link about ten minutes on two cores for about the
# same gain (docs/performance.md, "Link-time optimisation of the hot files"). No
# debug information in the bitcode: the links strip it, and with it the
# link of the whole of CPython ran past 9 minutes at 10 GB.
# `override`: wasm_pgo.sh gives CFLAGS_NODIST on make's command line.
ERYX_LTO_FLAGS = -flto=thin -g0
Objects/%.o: override CFLAGS_NODIST += $(ERYX_LTO_FLAGS)
Python/ceval.o Python/gc.o Python/errors.o Python/bltinmodule.o \
Python/getargs.o Python/modsupport.o Python/pystate.o Python/pyhash.o \
Python/intrinsics.o: override CFLAGS_NODIST += $(ERYX_LTO_FLAGS)
