package temporal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"go.temporal.io/sdk/temporal"
)

// destination is Dest under the output root; Dest must stay inside it.
func (a *Activities) destination(dest string) (string, error) {
	if a.OutputRoot == "" {
		return "", errors.New("the worker has no output root")
	}
	if dest == "" || filepath.IsAbs(dest) || strings.ContainsRune(dest, 0) {
		return "", fmt.Errorf("dest %q: give a folder relative to the output root", dest)
	}
	clean := filepath.Clean(dest)
	if clean == "." || clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("dest %q leaves the output root", dest)
	}
	return filepath.Join(a.OutputRoot, clean), nil
}

// openDestination makes dir under the output root one folder at a time and returns it open.
// The root is shared by many hosts and users: a link planted anywhere below it must not send
// an export into /etc, nor into another export's folder. So every folder is opened through
// its parent's handle (os.Root, which never resolves a name outside the folder it holds), and
// the folder held must be the one that has the name, not a link's target: a link swapped in
// between the Mkdir and the open is refused, and a swap after the open changes nothing (what
// is held is a handle, not a name). The export then writes through the handle (exportDir),
// never through the path by name.
func (a *Activities) openDestination(dir string) (*os.File, error) {
	rel, err := filepath.Rel(a.OutputRoot, dir)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s is not under the output root", dir), "invalid_argument", nil)
	}
	// The root itself is the worker's own configuration, and may be a link (to a mount).
	cur, err := os.OpenRoot(a.OutputRoot)
	if err != nil {
		return nil, temporal.NewApplicationError(fmt.Sprintf("output root: %v", err), "io")
	}
	defer func() { _ = cur.Close() }()
	at := a.OutputRoot
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		at = filepath.Join(at, part)
		if err := cur.Mkdir(part, 0o750); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, temporal.NewApplicationError(err.Error(), "io")
		}
		next, err := cur.OpenRoot(part)
		if err != nil {
			// os.Root refuses a link that leads out of the folder it holds.
			return nil, notAFolder(at)
		}
		if a.afterOpen != nil {
			a.afterOpen(at)
		}
		held, herr := next.Stat(".")
		named, nerr := cur.Lstat(part)
		if herr != nil || nerr != nil || !named.IsDir() || !os.SameFile(held, named) {
			_ = next.Close()
			return nil, notAFolder(at)
		}
		_ = cur.Close()
		cur = next
	}
	f, err := cur.Open(".")
	if err != nil {
		return nil, temporal.NewApplicationError(err.Error(), "io")
	}
	return f, nil
}

func notAFolder(path string) error {
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("%s is not a folder (a link or a file is in the way)", path), "invalid_argument", nil)
}

// exportDir is the name under which the library opens the folder f holds: the process's own
// link to the open handle (/proc/self/fd/N), which no rename or link in the shared root can
// redirect. The library opens output_dir once and creates everything through that handle
// (src/transfer/outdir.rs), so the export's files land in exactly the folder held here.
func exportDir(f *os.File) (string, error) {
	base := "/dev/fd"
	if runtime.GOOS == "linux" {
		base = "/proc/self/fd"
	}
	p := fmt.Sprintf("%s/%d", base, f.Fd())
	held, err := f.Stat()
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(p); err != nil || !os.SameFile(fi, held) {
		return "", fmt.Errorf("%s does not name the destination's open folder (is /proc mounted?)", p)
	}
	return p, nil
}
