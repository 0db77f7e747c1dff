package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/parleyim/parley/store"
)

func testMeta(t *testing.T, open opener) {
	t.Run("missing", func(t *testing.T) {
		s := open(t)
		if _, err := s.MetaValue(t.Context(), "nothing"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("MetaValue: got %v, want ErrNotFound", err)
		}
	})

	t.Run("insert if absent", func(t *testing.T) {
		s := open(t)
		for _, tt := range []struct{ key, value, want string }{
			{"k1", "v1", "v1"},
			{"k1", "v2", "v1"},
			{"k2", "", ""},
			{"k2", "v3", ""},
		} {
			got, err := s.SetMetaValue(t.Context(), tt.key, tt.value)
			if err != nil {
				t.Fatalf("SetMetaValue(%q, %q): %v", tt.key, tt.value, err)
			}
			if got != tt.want {
				t.Errorf("SetMetaValue(%q, %q) = %q, want %q", tt.key, tt.value, got, tt.want)
			}
			if got, err := s.MetaValue(t.Context(), tt.key); err != nil || got != tt.want {
				t.Errorf("MetaValue(%q) = %q, %v, want %q", tt.key, got, err, tt.want)
			}
		}
	})

	t.Run("concurrent first starts agree", func(t *testing.T) {
		s := open(t)
		const n = 8
		got := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				v, err := s.SetMetaValue(t.Context(), "key", fmt.Sprint("value", i))
				if err != nil {
					t.Errorf("SetMetaValue: %v", err)
				}
				got[i] = v
			})
		}
		wg.Wait()
		for i := range got {
			if got[i] != got[0] {
				t.Fatalf("SetMetaValue results differ: %q", got)
			}
		}
		if v, err := s.MetaValue(t.Context(), "key"); err != nil || v != got[0] {
			t.Errorf("MetaValue = %q, %v, want %q", v, err, got[0])
		}
	})
}
