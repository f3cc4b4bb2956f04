/*
 * Prototypes of every wasi_snapshot_preview1 import we define, with the
 * signatures wasm2c 1.0.32 emits (i32 -> u32, i64 -> u64, results are the
 * u32 WASI errno). The generated guest header declares the same functions;
 * this one is for our own callers and tests.
 */
#ifndef ERYX_WASI_IMPORTS_H
#define ERYX_WASI_IMPORTS_H

#include <stdint.h>

#include "wasi.h"

#define ERYX__WASI_IMPORT(name) Z_wasi_snapshot_preview1Z_##name

uint32_t ERYX__WASI_IMPORT(args_get)(eryx__wasi *, uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(args_sizes_get)(eryx__wasi *, uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(environ_get)(eryx__wasi *, uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(environ_sizes_get)(eryx__wasi *, uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(clock_res_get)(eryx__wasi *, uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(clock_time_get)(eryx__wasi *, uint32_t, uint64_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(fd_advise)(eryx__wasi *, uint32_t, uint64_t, uint64_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(fd_allocate)(eryx__wasi *, uint32_t, uint64_t, uint64_t);
uint32_t ERYX__WASI_IMPORT(fd_close)(eryx__wasi *, uint32_t);
uint32_t ERYX__WASI_IMPORT(fd_datasync)(eryx__wasi *, uint32_t);
uint32_t ERYX__WASI_IMPORT(fd_fdstat_get)(eryx__wasi *, uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(fd_fdstat_set_flags)(eryx__wasi *, uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(fd_fdstat_set_rights)(eryx__wasi *, uint32_t, uint64_t, uint64_t);
uint32_t ERYX__WASI_IMPORT(fd_filestat_get)(eryx__wasi *, uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(fd_filestat_set_size)(eryx__wasi *, uint32_t, uint64_t);
uint32_t ERYX__WASI_IMPORT(fd_filestat_set_times)(eryx__wasi *, uint32_t, uint64_t, uint64_t,
                                                  uint32_t);
uint32_t ERYX__WASI_IMPORT(fd_pread)(eryx__wasi *, uint32_t, uint32_t, uint32_t, uint64_t,
                                     uint32_t);
uint32_t ERYX__WASI_IMPORT(fd_prestat_get)(eryx__wasi *, uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(fd_prestat_dir_name)(eryx__wasi *, uint32_t, uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(fd_pwrite)(eryx__wasi *, uint32_t, uint32_t, uint32_t, uint64_t,
                                      uint32_t);
uint32_t ERYX__WASI_IMPORT(fd_read)(eryx__wasi *, uint32_t, uint32_t, uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(fd_readdir)(eryx__wasi *, uint32_t, uint32_t, uint32_t, uint64_t,
                                       uint32_t);
uint32_t ERYX__WASI_IMPORT(fd_renumber)(eryx__wasi *, uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(fd_seek)(eryx__wasi *, uint32_t, uint64_t, uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(fd_sync)(eryx__wasi *, uint32_t);
uint32_t ERYX__WASI_IMPORT(fd_tell)(eryx__wasi *, uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(fd_write)(eryx__wasi *, uint32_t, uint32_t, uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(path_create_directory)(eryx__wasi *, uint32_t, uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(path_filestat_get)(eryx__wasi *, uint32_t, uint32_t, uint32_t,
                                              uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(path_filestat_set_times)(eryx__wasi *, uint32_t, uint32_t,
                                                    uint32_t, uint32_t, uint64_t, uint64_t,
                                                    uint32_t);
uint32_t ERYX__WASI_IMPORT(path_link)(eryx__wasi *, uint32_t, uint32_t, uint32_t, uint32_t,
                                      uint32_t, uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(path_open)(eryx__wasi *, uint32_t, uint32_t, uint32_t, uint32_t,
                                      uint32_t, uint64_t, uint64_t, uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(path_readlink)(eryx__wasi *, uint32_t, uint32_t, uint32_t,
                                          uint32_t, uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(path_remove_directory)(eryx__wasi *, uint32_t, uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(path_rename)(eryx__wasi *, uint32_t, uint32_t, uint32_t, uint32_t,
                                        uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(path_symlink)(eryx__wasi *, uint32_t, uint32_t, uint32_t, uint32_t,
                                         uint32_t);
uint32_t ERYX__WASI_IMPORT(path_unlink_file)(eryx__wasi *, uint32_t, uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(poll_oneoff)(eryx__wasi *, uint32_t, uint32_t, uint32_t, uint32_t);
void ERYX__WASI_IMPORT(proc_exit)(eryx__wasi *, uint32_t);
uint32_t ERYX__WASI_IMPORT(proc_raise)(eryx__wasi *, uint32_t);
uint32_t ERYX__WASI_IMPORT(random_get)(eryx__wasi *, uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(sched_yield)(eryx__wasi *);
uint32_t ERYX__WASI_IMPORT(sock_accept)(eryx__wasi *, uint32_t, uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(sock_recv)(eryx__wasi *, uint32_t, uint32_t, uint32_t, uint32_t,
                                      uint32_t, uint32_t);
uint32_t ERYX__WASI_IMPORT(sock_send)(eryx__wasi *, uint32_t, uint32_t, uint32_t, uint32_t,
                                      uint32_t);
uint32_t ERYX__WASI_IMPORT(sock_shutdown)(eryx__wasi *, uint32_t, uint32_t);

#endif
