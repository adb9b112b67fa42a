#!/bin/sh
# Rebuilds lua.wasm from Lua 5.4.7 (github.com/lua/lua, tag v5.4.7, commit
# 1ab3208a1fceb12fca8f24ba57d6e13c5bff15e3) and bench.c, with Debian 12's
# clang 14 + wasi-libc:  apt-get install -y clang lld wasi-libc libclang-rt-dev-wasm32
# Usage: LUA_SRC=/path/to/lua-5.4.7 ./build.sh   (writes lua.wasm here)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=${LUA_SRC:?set LUA_SRC to a checkout of lua/lua at tag v5.4.7}
core="lapi lcode lctype ldebug ldo ldump lfunc lgc llex lmem lobject lopcodes lparser lstate lstring ltable ltm lundump lvm lzio lauxlib lbaselib lmathlib lstrlib ltablib"
files=""
for f in $core; do files="$files $src/$f.c"; done
clang --target=wasm32-wasi -O2 -mexec-model=reactor \
	-I"$here/include" -I"$src" \
	'-DLUAI_THROW(L,c)=abort()' '-DLUAI_TRY(L,c,a)=a' '-Dluai_jmpbuf=int' -Dl_signalT=int \
	'-Dl_randomizePivot()=0' '-Dluai_makeseed(L)=0' \
	-Wl,--strip-all -o "$here/lua.wasm" "$here/bench.c" $files
