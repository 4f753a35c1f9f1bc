package postgres

import (
	"context"
	"io/fs"
	"sync"
	"testing"
)

// TestMigrate checks that Open leaves an empty database alone and that
// concurrent Migrate calls from two processes bring it up once.
func TestMigrate(t *testing.T) {
	t.Parallel()
	url := newTestSchema(t, false)
	ctx := context.Background()
	var stores []*Store
	for range 2 {
		s, err := Open(ctx, url, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores = append(stores, s)
	}
	var exists bool
	if err := stores[0].pool.QueryRow(ctx, "SELECT to_regclass('events') IS NOT NULL").Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatal("Open migrated")
	}
	var wg sync.WaitGroup
	for _, s := range stores {
		wg.Go(func() {
			if err := s.Migrate(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var versions int
	if err := stores[1].pool.QueryRow(ctx, "SELECT count(*) FROM goose_db_version WHERE version_id > 0").Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if want := countMigrations(t); versions != want {
		t.Fatalf("%d migrations recorded, want %d", versions, want)
	}
	if _, err := stores[1].Events(ctx); err != nil {
		t.Fatal(err)
	}
}

// countMigrations counts the embedded migration files.
func countMigrations(t *testing.T) int {
	t.Helper()
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	return len(files)
}
