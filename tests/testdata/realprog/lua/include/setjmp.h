/* wasi-libc has no setjmp.h. ldo.c includes it unconditionally, but the
 * build defines LUAI_TRY/LUAI_THROW (see build.sh) so nothing uses it. */
