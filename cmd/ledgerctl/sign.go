package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sirgiving/ledger/httpapi"
)

func init() {
	register(group{name: "sign", summary: "print curl-ready headers of a signed partner API request", run: runSign})
}

func runSign(_ context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: ledgerctl sign --key pk_or_sk --secret HMAC --method POST --path '/v1/partner/...' [--body-file f] [--timestamp T]\n\nflags:")
		fs.PrintDefaults()
	}
	key := fs.String("key", "", "the X-Partner-Key (pk_… or sk_…)")
	secret := fs.String("secret", "", "the key's hmacSecret (64 hex characters)")
	method := fs.String("method", "GET", "HTTP method")
	path := fs.String("path", "", "path with raw query string, exactly as it will be sent")
	bodyFile := fs.String("body-file", "", "file holding the exact request body (default: empty body; - for stdin)")
	ts := fs.Int64("timestamp", 0, "Unix seconds to sign at (default: now)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *key == "" || *secret == "" || *path == "" || fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	if !strings.HasPrefix(*path, "/") {
		return errors.New("sign: --path must start with / (no scheme, no host)")
	}
	var body []byte
	var err error
	switch *bodyFile {
	case "":
	case "-":
		body, err = io.ReadAll(os.Stdin)
	default:
		body, err = os.ReadFile(*bodyFile)
	}
	if err != nil {
		return fmt.Errorf("sign: reading the body: %w", err)
	}
	if *ts == 0 {
		*ts = time.Now().Unix()
	}
	stamp := strconv.FormatInt(*ts, 10)
	m := strings.ToUpper(*method)
	fmt.Fprintf(out, "-H 'X-Partner-Key: %s' -H 'X-Timestamp: %s' -H 'X-Signature: %s'\n",
		*key, stamp, httpapi.Sign(*secret, stamp, m, *path, body))
	return nil
}
