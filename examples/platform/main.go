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
	logger, err := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	p, err := New(cfg, logger)
	if err != nil {
		return err
	}
	defer p.Close()

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("REST API: %w", err)
	}
	api := newLimitListener(ln, cfg.HTTPMaxConns, cfg.HTTPMaxConnsPerIP, cfg.TLSCert == "")
	p.metrics.reg.MustRegister(refusedConnections("api", api))
	servers := []*server{{name: "REST API", ln: api, srv: newHTTPServer(p.Handler())}}
	if cfg.TLSCert != "" {
		servers[0].cert, servers[0].key = cfg.TLSCert, cfg.TLSKey
	}
	var admin net.Addr
	if cfg.AdminAddr != "off" {
		aln, err := net.Listen("tcp", cfg.AdminAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("admin listener: %w", err)
		}
		admin = aln.Addr()
		adm := newLimitListener(aln, cfg.HTTPMaxConns, cfg.HTTPMaxConnsPerIP, true)
		p.metrics.reg.MustRegister(refusedConnections("admin", adm))
		servers = append(servers, &server{name: "admin", ln: adm, srv: newHTTPServer(p.AdminHandler())})
	}
	serve := func(ctx context.Context) error {
		errc := make(chan error, len(servers))
		for _, s := range servers {
			go func() { errc <- s.serve(ctx, logger) }()
		}
		var errs []error
		for range servers {
			errs = append(errs, <-errc)
		}
		return errors.Join(errs...)
	}
	if err := p.Listen(); err != nil {
		return err
	}
	printBanner(stdout, cfg, p, ln.Addr(), admin)

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger.Info("platform started", "api", openURL(scheme(cfg), ln.Addr()), "data", cfg.DataDir)
	err = p.Run(ctx, serve)
	if err != nil {
		logger.Error("platform stopped", "err", err)
		return err
	}
	logger.Info("platform stopped")
	return nil
}

func scheme(cfg Config) string {
	if cfg.TLSCert != "" {
		return "https"
	}
	return "http"
}

// server is one HTTP listener of the command.
type server struct {
	name      string
	ln        net.Listener
	srv       *http.Server
	cert, key string // PEM files: serve HTTPS
}

// serve serves until ctx ends, then lets the requests in flight finish
// (up to 5 s) before it returns, or Close would pull the store from under
// them.
func (s *server) serve(ctx context.Context, logger *slog.Logger) error {
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
		if err := s.srv.Shutdown(sctx); err != nil {
			logger.Warn(s.name+" shutdown", "err", err)
		}
	}()
	var err error
	if s.cert != "" {
		s.srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		err = s.srv.ServeTLS(s.ln, s.cert, s.key)
	} else {
		err = s.srv.Serve(s.ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("%s: %w", s.name, err)
}

// printBanner says where the platform listens. An app's secret is printed
// only on the start that created it (SEC-5).
func printBanner(w io.Writer, cfg Config, p *Platform, api, admin net.Addr) {
	fmt.Fprintf(w, "Doze platform\n")
	u := openURL(scheme(cfg), api)
	if host, port, _ := net.SplitHostPort(api.String()); net.ParseIP(host).IsUnspecified() {
		fmt.Fprintf(w, "  REST API and console  %s (listening on every address, port %s)\n", u, port)
	} else {
		fmt.Fprintf(w, "  REST API and console  %s\n", u)
	}
	if admin != nil {
		fmt.Fprintf(w, "  metrics (operator)    http://%s/metrics\n", admin)
	}
	if a := p.lwm.UDPAddr(); a != nil {
		fmt.Fprintf(w, "  CoAP (UDP)            %s (devices registered with security NONE only)\n", a)
	}
	if a := p.lwm.DTLSAddr(); a != nil {
		fmt.Fprintf(w, "  CoAP over DTLS-PSK    %s\n", a)
	}
	fmt.Fprintf(w, "  data                  %s\n", cfg.DataDir)
	if p.newAdminToken != "" {
		fmt.Fprintf(w, "  admin token           %s (shown once: keep it; it manages apps at /doze/v1/apps)\n", p.newAdminToken)
	}
	for _, a := range p.auth.Apps() {
		if secret, ok := p.newSecrets[a.ID]; ok {
			fmt.Fprintf(w, "  app                   appId=%s secret=%s (shown once: keep it)\n", a.ID, secret)
			continue
		}
		fmt.Fprintf(w, "  app                   appId=%s (secret shown when created; for a new one start with -reset-secret %s)\n", a.ID, a.ID)
	}
	if cfg.Demo {
		fmt.Fprintf(w, "  demo product          manufacturerId=%s model=%s deviceType=%s\n", demoManufacturerID, demoModel, demoDeviceType)
	}
}
