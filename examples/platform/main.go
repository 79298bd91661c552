package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, errHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "platform:", err)
		os.Exit(1)
	}
}

var errHelp = errors.New("help")

// run starts the platform and serves until ctx ends or a signal arrives.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		if errors.Is(err, flagHelp) {
			return errHelp
		}
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	p, err := New(cfg, logger)
	if err != nil {
		return err
	}
	defer p.Close()

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("REST API: %w", err)
	}
	srv := &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 10 * time.Second}
	serve := func(ctx context.Context) error {
		// Serve returns as soon as Shutdown starts; wait until the
		// requests in flight are done, or Close would pull the store from
		// under them.
		shut, served := make(chan struct{}), make(chan struct{})
		defer func() { close(served); <-shut }()
		go func() {
			defer close(shut)
			select {
			case <-ctx.Done():
			case <-served: // Serve failed on its own
				return
			}
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				logger.Warn("REST API shutdown", "err", err)
			}
		}()
		var err error
		if cfg.TLSCert != "" {
			srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			err = srv.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
		} else {
			err = srv.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
	if err := p.Listen(); err != nil {
		return err
	}
	printBanner(stdout, cfg, p, ln.Addr())

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return p.Run(ctx, serve)
}

func printBanner(w io.Writer, cfg Config, p *Platform, api net.Addr) {
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
	}
	fmt.Fprintf(w, "Doze platform\n")
	fmt.Fprintf(w, "  REST API and console  %s://%s/\n", scheme, api)
	if a := p.lwm.UDPAddr(); a != nil {
		fmt.Fprintf(w, "  CoAP (UDP)            %s\n", a)
	}
	if a := p.lwm.DTLSAddr(); a != nil {
		fmt.Fprintf(w, "  CoAP over DTLS-PSK    %s\n", a)
	}
	fmt.Fprintf(w, "  data                  %s\n", cfg.DataDir)
	for _, a := range p.auth.Apps() {
		fmt.Fprintf(w, "  app                   appId=%s secret=%s\n", a.ID, a.Secret)
	}
	if cfg.Demo {
		fmt.Fprintf(w, "  demo product          manufacturerId=%s model=%s deviceType=%s\n", demoManufacturerID, demoModel, demoDeviceType)
	}
}
