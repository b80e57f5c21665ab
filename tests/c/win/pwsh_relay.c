/* TEST-ONLY stand-in for powershell.exe / pwsh.exe on Windows (no PowerShell exists under
 * Wine): a Windows program that hands its command line, split by Windows' own rules
 * (CommandLineToArgvW, what PowerShell's runtime uses), and its stdin to the Hyper-V stand-in
 * (tests/peers/hyperv/pwsh_standin.py, which holds the contract) through a relay on 127.0.0.1
 * (tests/support/wine_pwsh.rs; a Windows program under Wine cannot wait for a Linux process),
 * and writes back what the stand-in writes to stdout and stderr, and its exit code.
 *
 * Environment: HS_PWSH_RELAY=127.0.0.1:PORT. When the relay says so (frame 4, with a token), it
 * starts a copy of itself, `--linger TOKEN`, which sleeps until killed: a grandchild such as a
 * remote session's process, which a cancel must end with the rest of the job object.
 *
 * Relay protocol (little-endian): request = u32 argc, argc x (u32 len, UTF-8 bytes),
 * u32 len + the whole command line, u32 len + stdin; answer = frames (u8 kind, u32 len, bytes):
 * 1 stdout, 2 stderr, 3 exit code (i32), 4 start a lingering grandchild (UTF-8 token). */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <shellapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(int code, const char *what) {
  fprintf(stderr, "pwsh_relay: %s (%lu)\n", what, (unsigned long)GetLastError());
  ExitProcess(code);
}

static char *utf8(const wchar_t *w) {
  int n = WideCharToMultiByte(CP_UTF8, 0, w, -1, NULL, 0, NULL, NULL);
  char *s = malloc((size_t)n);
  WideCharToMultiByte(CP_UTF8, 0, w, -1, s, n, NULL, NULL);
  return s;
}

static void send_all(SOCKET s, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    int n = send(s, p, len > 65536 ? 65536 : (int)len, 0);
    if (n <= 0) die(92, "send to the relay");
    p += n;
    len -= (size_t)n;
  }
}

static void send_blob(SOCKET s, const void *buf, size_t len) {
  unsigned int n = (unsigned int)len;
  send_all(s, &n, 4);
  send_all(s, buf, len);
}

static int recv_all(SOCKET s, void *buf, size_t len) {
  char *p = buf;
  while (len > 0) {
    int n = recv(s, p, len > 65536 ? 65536 : (int)len, 0);
    if (n <= 0) return 0;
    p += n;
    len -= (size_t)n;
  }
  return 1;
}

static void linger_child(const wchar_t *token) {
  wchar_t self[MAX_PATH], cmd[2 * MAX_PATH + 64];
  GetModuleFileNameW(NULL, self, MAX_PATH);
  _snwprintf(cmd, sizeof cmd / sizeof cmd[0], L"\"%ls\" --linger %ls", self, token);
  /* Its std handles are NUL, and ours are not inherited: it holds none of the pipes the
   * library reads (which would keep stdout open after we exit), as a remote session's process
   * would not. */
  HANDLE std_handles[3] = {GetStdHandle(STD_INPUT_HANDLE), GetStdHandle(STD_OUTPUT_HANDLE),
                           GetStdHandle(STD_ERROR_HANDLE)};
  for (int i = 0; i < 3; i++) SetHandleInformation(std_handles[i], HANDLE_FLAG_INHERIT, 0);
  SECURITY_ATTRIBUTES inherit = {sizeof inherit, NULL, TRUE};
  HANDLE nul = CreateFileW(L"NUL", GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, &inherit,
                           OPEN_EXISTING, 0, NULL);
  if (nul == INVALID_HANDLE_VALUE) die(93, "open NUL");
  STARTUPINFOW si;
  PROCESS_INFORMATION pi;
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  si.dwFlags = STARTF_USESTDHANDLES;
  si.hStdInput = si.hStdOutput = si.hStdError = nul;
  if (!CreateProcessW(NULL, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi)) die(93, "start the lingering child");
  CloseHandle(nul);
  CloseHandle(pi.hThread);
  CloseHandle(pi.hProcess);
}

int main(void) {
  int argc = 0;
  wchar_t *line = GetCommandLineW();
  wchar_t **argv = CommandLineToArgvW(line, &argc);
  if (argv == NULL) die(94, "CommandLineToArgvW");
  if (argc == 3 && wcscmp(argv[1], L"--linger") == 0) {
    Sleep(INFINITE);
    return 0;
  }
  char relay[128];
  if (GetEnvironmentVariableA("HS_PWSH_RELAY", relay, sizeof relay) == 0) die(90, "HS_PWSH_RELAY is not set");
  char *colon = strrchr(relay, ':');
  if (colon == NULL) die(90, "HS_PWSH_RELAY is not HOST:PORT");
  *colon = '\0';

  /* All of stdin first: the library writes its input document and closes it. */
  size_t cap = 1 << 16, len = 0;
  char *in = malloc(cap);
  HANDLE hin = GetStdHandle(STD_INPUT_HANDLE);
  for (;;) {
    DWORD n = 0;
    if (len == cap) in = realloc(in, cap *= 2);
    if (!ReadFile(hin, in + len, (DWORD)(cap - len), &n, NULL) || n == 0) break;
    len += n;
  }

  WSADATA wsa;
  if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0) die(95, "WSAStartup");
  SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)atoi(colon + 1));
  inet_pton(AF_INET, relay, &addr.sin_addr);
  if (connect(s, (struct sockaddr *)&addr, sizeof addr) != 0) die(96, "connect to the relay");

  unsigned int count = (unsigned int)argc;
  send_all(s, &count, 4);
  for (int i = 0; i < argc; i++) {
    char *a = utf8(argv[i]);
    send_blob(s, a, strlen(a));
    free(a);
  }
  char *whole = utf8(line);
  send_blob(s, whole, strlen(whole));
  send_blob(s, in, len);

  HANDLE out = GetStdHandle(STD_OUTPUT_HANDLE), err = GetStdHandle(STD_ERROR_HANDLE);
  char *buf = malloc(1 << 20);
  for (;;) {
    unsigned char kind;
    unsigned int n;
    if (!recv_all(s, &kind, 1) || !recv_all(s, &n, 4) || n > (1u << 20) || !recv_all(s, buf, n))
      die(91, "the relay closed without an exit code");
    if (kind == 3 && n == 4) {
      int code;
      memcpy(&code, buf, 4);
      ExitProcess((UINT)code);
    }
    if (kind == 4) {
      wchar_t token[256];
      buf[n < 255 ? n : 255] = '\0';
      MultiByteToWideChar(CP_UTF8, 0, buf, -1, token, 256);
      linger_child(token);
      continue;
    }
    DWORD w;
    WriteFile(kind == 1 ? out : err, buf, n, &w, NULL);
  }
}
