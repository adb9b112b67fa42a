/* Benchmark driver for the Lua 5.4 interpreter built to wasm32-wasi.
 *
 * bench(n) opens a fresh Lua state, runs an embedded script whose work
 * grows with n, and returns a checksum of its results (so the host can check
 * that the plain and the instrumented module agree). The script mixes what
 * real Lua programs do: recursive calls, table inserts and sorts, string
 * formatting, pattern matching and closures. bench(-1) runs a script that
 * never ends (`while true do end`), for preemption tests.
 *
 * Errors: the build has no setjmp (wasi-libc), so a Lua error aborts
 * (traps); the script raises none. */
#include <stdint.h>
#include <stdlib.h>

#include "lauxlib.h"
#include "lua.h"
#include "lualib.h"

static const char script[] =
    "local n = ...\n"
    "local function fib(k) if k < 2 then return k end return fib(k-1) + fib(k-2) end\n"
    "local acc = fib(18 + n % 4)\n"
    "local t = {}\n"
    "for i = 1, n * 300 do t[i] = (i * 7919) % 1009 end\n"
    "table.sort(t, function(a, b) return a > b end)\n"
    "for i = 1, #t, 7 do acc = acc + t[i] end\n"
    "local parts = {}\n"
    "for i = 1, n * 40 do parts[#parts + 1] = string.format('%d:%s;', i, tostring(i * 3)) end\n"
    "local s = table.concat(parts)\n"
    "for w in s:gmatch('(%d+);') do acc = acc + #w end\n"
    "s = s:gsub('%d', function(d) return string.char(97 + tonumber(d)) end)\n"
    "acc = acc + #s + select(2, s:gsub('a', 'a'))\n"
    "local m = {}\n"
    "for i = 1, n * 50 do m['k' .. (i % 97)] = (m['k' .. (i % 97)] or 0) + i end\n"
    "for k, v in pairs(m) do acc = acc + v % 13 end\n"
    "local sum = 0.0\n"
    "for i = 1, n * 500 do sum = sum + math.sin(i) * math.sqrt(i) end\n"
    "acc = acc + math.floor(sum)\n"
    "return acc % 2147483647\n";

static const luaL_Reg libs[] = {
    {LUA_GNAME, luaopen_base},
    {LUA_TABLIBNAME, luaopen_table},
    {LUA_STRLIBNAME, luaopen_string},
    {LUA_MATHLIBNAME, luaopen_math},
    {NULL, NULL},
};

__attribute__((export_name("bench"))) int32_t bench(int32_t n) {
  lua_State *L = luaL_newstate();
  if (L == NULL) return -1;
  for (const luaL_Reg *lib = libs; lib->func; lib++) {
    luaL_requiref(L, lib->name, lib->func, 1);
    lua_pop(L, 1);
  }
  int32_t out = -2;
  static const char spin[] = "while true do end";
  const char *src = n < 0 ? spin : script;
  size_t len = n < 0 ? sizeof spin - 1 : sizeof script - 1;
  if (luaL_loadbuffer(L, src, len, "bench") == LUA_OK) {
    lua_pushinteger(L, n);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK) out = (int32_t)lua_tointeger(L, -1);
  }
  lua_close(L);
  return out;
}
