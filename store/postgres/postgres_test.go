package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/internal/deptest"
	"github.com/jackc/pgx/v5"
)

func TestImports(t *testing.T) { deptest.Check(t) }

// testDSN is the database the tests use: DOZE_TEST_POSTGRES, or the local
// server every machine of the project runs.
func testDSN() string {
	if s := os.Getenv("DOZE_TEST_POSTGRES"); s != "" {
		return s
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

var (
	reachOnce sync.Once
	reachErr  error
)

// needPostgres skips the test when the server does not answer, and fails
// it instead when CI=true: CI must not pass by skipping.
func needPostgres(t testing.TB) {
	t.Helper()
	reachOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, testDSN())
		if err == nil {
			err = c.Ping(ctx)
			c.Close(ctx)
		}
		reachErr = err
	})
	if reachErr == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("PostgreSQL at %s does not answer: %v (CI=true: the PostgreSQL tests must run)", redactDSN(testDSN()), reachErr)
	}
	t.Skipf("PostgreSQL at %s does not answer: %v; start it or set DOZE_TEST_POSTGRES (CI=true turns this skip into a failure)", redactDSN(testDSN()), reachErr)
}

// newSchema returns a fresh schema name and drops the schema when the
// test ends.
func newSchema(t testing.TB) string {
	t.Helper()
	needPostgres(t)
	name := "doze_test_" + hex.EncodeToString(func() []byte { b := make([]byte, 6); rand.Read(b); return b }())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, testDSN())
		if err != nil {
			t.Errorf("dropping schema %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA IF EXISTS "+name+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", name, err)
		}
	})
	return name
}

// openSchema opens a DB on schema (migrating it) and closes it when the
// test ends, before the schema is dropped.
func openSchema(t testing.TB, schema string) *DB {
	t.Helper()
	db, err := Open(context.Background(), testDSN(), &Options{Schema: schema, MaxConns: 8})
	if err != nil {
		t.Fatalf("Open(schema %s) = %v", schema, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openTest opens a DB on a schema of its own.
func openTest(t testing.TB) *DB { return openSchema(t, newSchema(t)) }
