# Appended to CPython's Makefile to read back how it links python.wasm.
print-link-vars:
	@echo "PY_LIBS='$(abspath $(LIBRARY)) $(MODLIBS) $(LIBS) $(SYSLIBS)'"
