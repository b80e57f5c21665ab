/* TEST-ONLY stand-in for Windows' bcryptprimitives.dll, which Wine 8.0 (Debian 12) lacks: it
 * implements the one function Rust's standard library imports from it, ProcessPrng
 * (learn.microsoft.com/windows/win32/seccng/processprng: "BOOL ProcessPrng(PBYTE pbData,
 * SIZE_T cbData)"; the real one always returns TRUE, this one FALSE only if RtlGenRandom fails),
 * with RtlGenRandom (advapi32's SystemFunction036, which Wine
 * implements from the host's random source). tests/support/wine.rs builds it into the test
 * Wine prefix's system32 only; it is never shipped, and a real Windows (8 and later) has the
 * real one. Why not a newer Wine: docs/DESIGN-NOTES.md, "Windows". */
#include <windows.h>
#define SystemFunction036 NTAPI SystemFunction036
#include <ntsecapi.h>
#undef SystemFunction036

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
  while (len > 0) {
    ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
    if (!RtlGenRandom(data, n)) return FALSE;
    data += n;
    len -= n;
  }
  return TRUE;
}
