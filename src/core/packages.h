/*
 * Third-party packages packed into a read-only file image (packages.c).
 */
#ifndef ERYX_CORE_PACKAGES_H
#define ERYX_CORE_PACKAGES_H

#include <stddef.h>
#include <stdint.h>

/* Where every sandbox of a runtime with packages finds them (on sys.path). */
#define ERYX__SITE_PACKAGES "/usr/lib/python3.13/site-packages"

/* Bounds of one runtime's packages: files, and bytes of paths and data. */
#define ERYX__PACKAGES_MAX_FILES 200000u
#define ERYX__PACKAGES_MAX_BYTES (1ull << 30)
/* How many times its packed size a wheel's member may unpack to (beyond
 * 4 KiB): more than deflate can make (1,032), less than a bzip2 bomb. */
#define ERYX__WHEEL_MAX_RATIO 1100u

/* Packs the files of the site-packages directories and the pure-Python
 * wheels into one image (*image, malloc'd; *size bytes). When two sources
 * hold the same file, the first one given wins (directories in order, then
 * wheels in order). __pycache__ and native extensions of directories are
 * left out; a wheel with a native extension, a member outside its root or
 * damage is refused. Returns an eryx status; the message goes to the
 * thread. */
int eryx__packages_build(const char *const *dirs, size_t n_dirs, const char *const *wheels,
                         size_t n_wheels, uint8_t **image, size_t *size);

/* The bytecode file name's ending of the guest's CPython (its cache tag). */
#define ERYX__PYC_SUFFIX ".cpython-313.pyc"

/* The packages' image with the bytecode of their modules added (*image,
 * malloc'd; *out_size bytes). bytecode is an image made in the guest
 * (guest/python/_eryx/bytecode.py) of "D/__pycache__/N.cpython-313.pyc"
 * entries; each must be the bytecode path of a "D/N.py" of the packages,
 * or nothing is made (ERYX_INIT). Where the packages hold the same path,
 * the bytecode wins. Entries past the packages' bounds are left out and
 * counted in *n_left. Returns an eryx status; the message goes to the
 * thread. */
int eryx__packages_add_bytecode(const uint8_t *packages, size_t size, const uint8_t *bytecode,
                                size_t bc_size, uint8_t **image, size_t *out_size,
                                size_t *n_left);

#endif
