// pgx v4 (Go) driver steps against HeliosProxy; see tests/drivers/README.md.
//
// usage: pgxsteps STEP...   (connection from the DRV_* environment)
// Prints "ok STEP" per step; on the first failure "FAIL STEP: error" and
// exits 1. Built offline from Debian's GOPATH (/usr/share/gocode) by
// tests/integration/test_drivers.py.
package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgconn"
	"github.com/jackc/pgx/v4"
)

var (
	table   = os.Getenv("DRV_TABLE")
	channel = os.Getenv("DRV_CHANNEL")
	bg      = context.Background()
)

func notifyWait() time.Duration {
	if s, err := strconv.ParseFloat(os.Getenv("DRV_NOTIFY_SECS"), 64); err == nil {
		return time.Duration(s * float64(time.Second))
	}
	return 10 * time.Second
}

func connect() (*pgx.Conn, error) {
	// sslmode=require: TLS without certificate checks, as in libpq
	url := fmt.Sprintf("postgres://%s:%s@%s:%s/%s?sslmode=require&connect_timeout=10",
		os.Getenv("DRV_USER"), os.Getenv("DRV_PASSWORD"), os.Getenv("DRV_HOST"),
		os.Getenv("DRV_PORT"), os.Getenv("DRV_DB"))
	return pgx.Connect(bg, url)
}

func check(cond bool, format string, args ...interface{}) error {
	if !cond {
		return fmt.Errorf(format, args...)
	}
	return nil
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func stepConnect(c *pgx.Conn) error {
	if c.PgConn().Conn() == nil {
		return errors.New("no connection")
	}
	var u string
	if err := c.QueryRow(bg, "SELECT current_user").Scan(&u); err != nil {
		return err
	}
	return check(u == os.Getenv("DRV_USER"), "current_user %q", u)
}

func stepPrepared(c *pgx.Conn) error {
	if _, err := c.Prepare(bg, "drv_s", "SELECT $1::int * 2, $2::text || '!'"); err != nil {
		return err
	}
	for i := 0; i < 3; i++ {
		var n int
		var s string
		if err := c.QueryRow(bg, "drv_s", i, fmt.Sprintf("v%d", i)).Scan(&n, &s); err != nil {
			return err
		}
		if err := check(n == i*2 && s == fmt.Sprintf("v%d!", i), "execute %d: %d %q", i, n, s); err != nil {
			return err
		}
	}
	return nil
}

// pgx v4's Conn.Deallocate sends SQL "deallocate name"; the name is then
// free for another text.
func stepDeallocate(c *pgx.Conn) error {
	for i, sql := range []string{"SELECT 1", "SELECT 2"} {
		if _, err := c.Prepare(bg, "drv_d", sql); err != nil {
			return err
		}
		var n int
		if err := c.QueryRow(bg, "drv_d").Scan(&n); err != nil {
			return err
		}
		if err := check(n == i+1, "drv_d gave %d", n); err != nil {
			return err
		}
		if err := c.Deallocate(bg, "drv_d"); err != nil {
			return err
		}
	}
	return nil
}

func count(c *pgx.Conn, where string) (int64, error) {
	var n int64
	err := c.QueryRow(bg, "SELECT count(*) FROM "+table+" WHERE "+where).Scan(&n)
	return n, err
}

func stepTxnCommit(c *pgx.Conn) error {
	tx, err := c.Begin(bg)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(bg, "INSERT INTO "+table+" VALUES ($1, $2), ($3, $4)", 1, "a", 2, "b"); err != nil {
		return err
	}
	if err := tx.Commit(bg); err != nil {
		return err
	}
	n, err := count(c, "id IN (1, 2)")
	if err != nil {
		return err
	}
	return check(n == 2, "committed rows %d", n)
}

func stepTxnRollback(c *pgx.Conn) error {
	tx, err := c.Begin(bg)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(bg, "INSERT INTO "+table+" VALUES ($1, $2)", 3, "c"); err != nil {
		return err
	}
	var n int64
	if err := tx.QueryRow(bg, "SELECT count(*) FROM "+table+" WHERE id = 3").Scan(&n); err != nil {
		return err
	}
	if err := check(n == 1, "row inside: %d", n); err != nil {
		return err
	}
	if err := tx.Rollback(bg); err != nil {
		return err
	}
	n, err = count(c, "id = 3")
	if err != nil {
		return err
	}
	return check(n == 0, "rolled back: %d", n)
}

func stepCopyIn(c *pgx.Conn) error {
	// pgx.Conn.CopyFrom: COPY ... FROM STDIN in binary format
	var rows [][]interface{}
	for i := 1000; i < 2000; i++ {
		rows = append(rows, []interface{}{int32(i), fmt.Sprintf("row %d", i)})
	}
	n, err := c.CopyFrom(bg, pgx.Identifier{table}, []string{"id", "v"}, pgx.CopyFromRows(rows))
	if err != nil {
		return err
	}
	if err := check(n == 1000, "CopyFrom copied %d", n); err != nil {
		return err
	}
	var cnt, sum int64
	if err := c.QueryRow(bg, "SELECT count(*), sum(id) FROM "+table+" WHERE id BETWEEN 1000 AND 1999").Scan(&cnt, &sum); err != nil {
		return err
	}
	return check(cnt == 1000 && sum == 1499500, "copied rows %d %d", cnt, sum)
}

func stepCopyOut(c *pgx.Conn) error {
	// pgconn.PgConn.CopyTo: COPY ... TO STDOUT in text format
	var buf bytes.Buffer
	if _, err := c.PgConn().CopyTo(bg, &buf, "COPY (SELECT i, 'row ' || i FROM generate_series(1, 5000) i) TO STDOUT"); err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	return check(len(lines) == 5000 && lines[0] == "1\trow 1" && lines[4999] == "5000\trow 5000",
		"COPY OUT gave %d lines", len(lines))
}

func stepCancel(c *pgx.Conn) error {
	// pgx closes a connection whose context is cancelled mid-query; the
	// CancelRequest alone is pgconn.PgConn.CancelRequest.
	t0 := time.Now()
	done := make(chan error, 1)
	go func() {
		time.Sleep(time.Second)
		done <- c.PgConn().CancelRequest(bg)
	}()
	_, err := c.Exec(bg, "SELECT pg_sleep(60)")
	if cerr := <-done; cerr != nil {
		return fmt.Errorf("CancelRequest: %w", cerr)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
		return fmt.Errorf("pg_sleep(60) ended with %v, not 57014", err)
	}
	if err := check(time.Since(t0) < 30*time.Second, "cancel took %v", time.Since(t0)); err != nil {
		return err
	}
	var one int
	if err := c.QueryRow(bg, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("usable after cancel: %w", err)
	}
	return nil
}

func stepNotify(c *pgx.Conn) error {
	if _, err := c.Exec(bg, "LISTEN "+channel); err != nil {
		return err
	}
	other, err := connect()
	if err != nil {
		return err
	}
	_, err = other.Exec(bg, "SELECT pg_notify($1, $2)", channel, "hello pgx")
	other.Close(bg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(bg, notifyWait())
	defer cancel()
	n, err := c.WaitForNotification(ctx)
	if err != nil {
		return fmt.Errorf("no notification: %w", err)
	}
	if err := check(n.Channel == channel && n.Payload == "hello pgx", "notification %v", n); err != nil {
		return err
	}
	_, err = c.Exec(bg, "UNLISTEN "+channel)
	return err
}

func stepLargeResult(c *pgx.Conn) error {
	var t string
	var b []byte
	if err := c.QueryRow(bg, "SELECT repeat('x', 1048576), convert_to(repeat('y', 1048576), 'UTF8')").Scan(&t, &b); err != nil {
		return err
	}
	if err := check(t == strings.Repeat("x", 1048576), "1 MiB text result"); err != nil {
		return err
	}
	return check(bytes.Equal(b, bytes.Repeat([]byte("y"), 1048576)), "1 MiB bytea result")
}

func roundtrip(c *pgx.Conn, textSize, byteaSize int) error {
	var sb strings.Builder
	for i := 0; i < textSize; i++ {
		sb.WriteByte(byte('a' + i%26))
	}
	text := sb.String()
	blob := make([]byte, byteaSize)
	for i := range blob {
		blob[i] = byte(i)
	}
	var n int
	var h string
	if err := c.QueryRow(bg, "SELECT length($1::text), md5($1::text)", text).Scan(&n, &h); err != nil {
		return err
	}
	if err := check(n == textSize && h == md5hex([]byte(text)), "text of %d", textSize); err != nil {
		return err
	}
	if err := c.QueryRow(bg, "SELECT length($1::bytea), md5($1::bytea)", blob).Scan(&n, &h); err != nil {
		return err
	}
	return check(n == byteaSize && h == md5hex(blob), "bytea of %d", byteaSize)
}

func main() {
	var c *pgx.Conn
	for _, s := range os.Args[1:] {
		var err error
		switch s {
		case "connect":
			if c, err = connect(); err == nil {
				err = stepConnect(c)
			}
		case "prepared":
			err = stepPrepared(c)
		case "deallocate":
			err = stepDeallocate(c)
		case "txn_commit":
			err = stepTxnCommit(c)
		case "txn_rollback":
			err = stepTxnRollback(c)
		case "copy_in":
			err = stepCopyIn(c)
		case "copy_out":
			err = stepCopyOut(c)
		case "cancel":
			err = stepCancel(c)
		case "notify":
			err = stepNotify(c)
		case "large_result":
			err = stepLargeResult(c)
		case "param_small":
			err = roundtrip(c, 60000, 60000)
		case "param_70k":
			err = roundtrip(c, 70000, 70000)
		case "param_1mb":
			err = roundtrip(c, 1<<20, 1<<20)
		default:
			err = fmt.Errorf("unknown step %s", s)
		}
		if err != nil {
			fmt.Printf("FAIL %s: %v\n", s, err)
			os.Exit(1)
		}
		fmt.Printf("ok %s\n", s)
	}
	if c != nil {
		c.Close(bg)
	}
}
