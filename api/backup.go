package api

import (
	"context"
	"net/http"
	"os"
	"path/filepath"

	"github.com/parleyim/parley/protocol"
)

// BackupRequest names the directory, on the server's machine, that a backup
// is written into. It must be an absolute path that does not exist yet.
type BackupRequest struct {
	Dir string `json:"dir"`
}

// backup writes a consistent copy of the store while the server runs.
func (a *API) backup(ctx context.Context, _ caller, r *http.Request) (int, any, error) {
	var in BackupRequest
	if err := decodeBody(r, &in); err != nil {
		return 0, nil, err
	}
	if !filepath.IsAbs(in.Dir) {
		return 0, nil, protocol.Errorf(protocol.CodeInvalidArgument, "dir must be an absolute path on the server")
	}
	if _, err := os.Stat(in.Dir); err == nil {
		return 0, nil, protocol.Errorf(protocol.CodeAlreadyExists, "%s exists: a backup goes into a new directory", in.Dir)
	}
	if err := a.Backup(ctx, filepath.Clean(in.Dir)); err != nil {
		a.Log.Error("backup failed", "dir", in.Dir, "err", err)
		return 0, nil, protocol.Errorf(protocol.CodeInternal, "backup failed: %v", err)
	}
	return http.StatusOK, in, nil
}
