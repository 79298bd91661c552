// Command codeccheck turns a device's hex payload into the JSON a declarative
// codec decodes it to, turns a JSON message into hex, and lists every
// validation problem of a codec — the "codec checker" of the FAQ (§3.19,
// §3.20, §9.7; COD-5).
//
// Usage:
//
//	codeccheck -codec c.json -check
//	codeccheck -codec c.json -profile WaterMeter_DozeLabs_WM100.zip -check
//	codeccheck -codec c.json -hex 0155FFAB0001E24000960010
//	codeccheck -codec c.json -hex 100007000E10 -downlink
//	codeccheck -codec c.json -json '{"msgType":"cloudReq","serviceId":"Meter","cmd":"SET_REPORT_PERIOD","paras":{"period":600},"mid":7}'
//
// -hex decodes an uplink (a report or a command response) unless -downlink
// is given; spaces and a 0x prefix are ignored. For a report it also says,
// on stderr, which bytes the platform acknowledges it with. -json takes any of the four
// COD-1 messages (deviceReq, deviceRsp, cloudReq, cloudRsp) and prints the
// payload in upper-case hex. -check prints every problem, one per line, and
// exits 1 if there is any. -profile (a Profile zip, a Profile directory or
// a newer JSON model) checks the codec's field mappings against the product
// as well (COD-3, §8.5) in every mode.
//
// Exit status: 0 success, 1 invalid codec or payload, 2 bad usage.
package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/doze-io/doze/codec"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole tool: it parses args, writes results to stdout and
// problems to stderr, and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("codeccheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	codecPath := fs.String("codec", "", "declarative codec JSON file (required)")
	check := fs.Bool("check", false, "list every validation problem of the codec; exit 1 if any")
	hexIn := fs.String("hex", "", "payload to decode, in hex")
	downlink := fs.Bool("downlink", false, "with -hex: decode a downlink (command, report response) instead of an uplink")
	jsonIn := fs.String("json", "", "COD-1 message to encode, as JSON")
	loadModel := profileFlag(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	modes := 0
	for _, on := range []bool{*check, *hexIn != "", *jsonIn != ""} {
		if on {
			modes++
		}
	}
	if *codecPath == "" || modes != 1 || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "codeccheck: give -codec and exactly one of -check, -hex, -json")
		fs.Usage()
		return 2
	}
	src, err := os.ReadFile(*codecPath)
	if err != nil {
		fmt.Fprintf(stderr, "codeccheck: %v\n", err)
		return 1
	}
	model, err := loadModel(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "codeccheck: %v\n", err)
		return 1
	}
	d, err := codec.Compile(src, model)
	if err != nil {
		var ce *codec.CompileError
		if !errors.As(err, &ce) {
			fmt.Fprintf(stderr, "codeccheck: %s: %v\n", *codecPath, err)
			return 1
		}
		out := stderr
		if *check {
			out = stdout
		}
		for _, p := range ce.Problems {
			if p.Line > 0 {
				line, col := p.Line, p.Column
				p.Line, p.Column = 0, 0
				fmt.Fprintf(out, "%s:%d:%d: %s\n", *codecPath, line, col, p)
				continue
			}
			fmt.Fprintf(out, "%s: %s\n", *codecPath, p)
		}
		fmt.Fprintf(stderr, "codeccheck: %s: %d problem(s)\n", *codecPath, len(ce.Problems))
		return 1
	}
	switch {
	case *check:
		fmt.Fprintf(stdout, "%s: ok\n", *codecPath)
		return 0
	case *hexIn != "":
		return decode(d, *hexIn, *downlink, stdout, stderr)
	}
	return encode(d, *jsonIn, stdout, stderr)
}

func decode(d *codec.Declarative, in string, downlink bool, stdout, stderr io.Writer) int {
	clean := strings.NewReplacer(" ", "", "\t", "", "\n", "", ":", "").Replace(in)
	clean = strings.TrimPrefix(strings.TrimPrefix(clean, "0x"), "0X")
	payload, err := hex.DecodeString(clean)
	if err != nil {
		fmt.Fprintf(stderr, "codeccheck: -hex: not hexadecimal bytes: %v\n", err)
		return 1
	}
	var m codec.Message
	if downlink {
		m, err = d.DecodeDownlink(payload)
	} else {
		m, err = d.Decode(payload)
	}
	if errors.Is(err, codec.ErrPCP) {
		fmt.Fprintln(stderr, "codeccheck: the payload starts FF FE: it is a PCP (upgrade) frame, which the platform hands to OTA, never to the codec")
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "codeccheck: %v\n", err)
		return 1
	}
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		fmt.Fprintf(stderr, "codeccheck: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", out)
	if _, ok := m.(*codec.Report); ok {
		switch ack, err := d.Encode(&codec.ReportAck{Request: payload}); {
		case err == nil:
			fmt.Fprintf(stderr, "codeccheck: the platform acknowledges this report with %X\n", ack)
		case errors.Is(err, codec.ErrNoAck):
			fmt.Fprintln(stderr, "codeccheck: the platform does not acknowledge this report (no addResponse)")
		}
	}
	return 0
}

func encode(d *codec.Declarative, in string, stdout, stderr io.Writer) int {
	m, err := codec.ParseMessage([]byte(in))
	if err != nil {
		fmt.Fprintf(stderr, "codeccheck: -json: %v\n", err)
		return 1
	}
	var given int
	if c, ok := m.(*codec.Command); ok {
		given = c.Mid
	}
	b, err := d.Append(nil, m)
	if errors.Is(err, codec.ErrNoAck) {
		fmt.Fprintln(stderr, "codeccheck: this report gets no acknowledgement (its message has no addResponse)")
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "codeccheck: %v\n", err)
		return 1
	}
	if c, ok := m.(*codec.Command); ok && given == 0 && c.Mid != 0 {
		fmt.Fprintf(stderr, "codeccheck: assigned mid %d\n", c.Mid)
	}
	fmt.Fprintf(stdout, "%X\n", b)
	return 0
}
