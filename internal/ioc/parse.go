package ioc

import (
	"encoding/hex"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// MaxValueLen is the longest IOC value velohunt accepts, in bytes. IRIS
// stores values of any size; a hunt list has no use for megabyte strings.
const MaxValueLen = 4096

// Target is a validated, normalised IOC ready to hunt.
type Target struct {
	Kind Kind
	// Value is the hunt value: the normalised string sent to the artifact in
	// its list parameter and echoed back in the IOC column of every matching
	// row. Examples: a lower-case hex hash, "203.0.113.9", "203.0.113.9|443",
	// "evil.example", "invoice.pdf.exe", "C:\Users\Public\a.exe".
	Value string
	// Context is optional extra detail kept from the IRIS value, such as the
	// file name of a "filename|sha256" pair. It is shown, never hunted.
	Context string
}

// Parse validates an IRIS IOC value of the given IRIS type name and returns
// its hunt target. It returns an *Error with code EINVALID and a reason fit
// for the IOC tab when the type is not huntable or the value is malformed.
// IRIS itself validates nothing on a fresh install: an "md5" can be any text.
func Parse(typeName, value string) (Target, error) {
	p, ok := typeParsers[typeName]
	if !ok {
		return Target{}, Errorf(EINVALID, "IOC type %q is not huntable in Velociraptor", clip(typeName, 64))
	}
	if len(value) > MaxValueLen {
		return Target{}, Errorf(EINVALID, "value is %d bytes long; the limit is %d", len(value), MaxValueLen)
	}
	if !utf8.ValidString(value) {
		return Target{}, Errorf(EINVALID, "value is not valid UTF-8")
	}
	value = strings.TrimSpace(value)
	if value == "" {
		return Target{}, Errorf(EINVALID, "value is empty")
	}
	return p(value)
}

func hashParser(algo string, hexLen int) parser {
	return func(v string) (Target, error) {
		h, err := parseHash(algo, hexLen, v)
		if err != nil {
			return Target{}, err
		}
		return Target{Kind: KindHash, Value: h}, nil
	}
}

// fileHashParser parses the "filename|hash" pairs: the hash is hunted, the
// file name is kept as context (a renamed copy is still a hit).
func fileHashParser(algo string, hexLen int) parser {
	return func(v string) (Target, error) {
		i := strings.LastIndexByte(v, '|')
		if i < 0 {
			return Target{}, Errorf(EINVALID, "expected \"filename|%s\", found no \"|\"", algo)
		}
		name, hash := strings.TrimSpace(v[:i]), v[i+1:]
		if name == "" {
			return Target{}, Errorf(EINVALID, "file name before \"|\" is empty")
		}
		if err := checkText(name); err != nil {
			return Target{}, err
		}
		h, err := parseHash(algo, hexLen, hash)
		if err != nil {
			return Target{}, err
		}
		return Target{Kind: KindHash, Value: h, Context: name}, nil
	}
}

func parseHash(algo string, hexLen int, v string) (string, error) {
	v = strings.ToLower(strings.TrimSpace(v))
	if len(v) != hexLen {
		return "", Errorf(EINVALID, "%s must be %d hex digits, got %d characters", algo, hexLen, utf8.RuneCountInString(v))
	}
	if _, err := hex.DecodeString(v); err != nil {
		return "", Errorf(EINVALID, "%s must be hexadecimal", algo)
	}
	return v, nil
}

func ipParser(withPort bool) parser {
	return func(v string) (Target, error) {
		if !withPort {
			a, err := parseIP(v)
			if err != nil {
				return Target{}, err
			}
			return Target{Kind: KindIP, Value: a.String()}, nil
		}
		i := strings.LastIndexByte(v, '|')
		if i < 0 {
			return Target{}, Errorf(EINVALID, "expected \"ip|port\", found no \"|\"")
		}
		a, err := parseIP(v[:i])
		if err != nil {
			return Target{}, err
		}
		port, err := parsePort(v[i+1:])
		if err != nil {
			return Target{}, err
		}
		return Target{Kind: KindIP, Value: a.String() + "|" + strconv.Itoa(port)}, nil
	}
}

func parseIP(v string) (netip.Addr, error) {
	v = strings.Trim(strings.TrimSpace(v), "[]")
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, Errorf(EINVALID, "%q is not an IP address", clip(v, 64))
	}
	return a.Unmap(), nil
}

func parsePort(v string) (int, error) {
	p, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || p < 1 || p > 65535 {
		return 0, Errorf(EINVALID, "%q is not a port number (1-65535)", clip(v, 16))
	}
	return p, nil
}

// domainParser accepts a host name or domain. An IP literal is hunted as an IP.
func domainParser(v string) (Target, error) {
	v = strings.TrimSpace(v)
	if a, err := netip.ParseAddr(strings.Trim(v, "[]")); err == nil && a.Zone() == "" {
		return Target{Kind: KindIP, Value: a.Unmap().String()}, nil
	}
	h, err := normaliseHost(v)
	if err != nil {
		return Target{}, err
	}
	return Target{Kind: KindDomain, Value: h}, nil
}

// hostPortParser hunts the host part of "hostname|port".
func hostPortParser(v string) (Target, error) {
	return hostPairParser("hostname|port", v, func(s string) error { _, err := parsePort(s); return err })
}

// domainIPParser hunts the domain of a "domain|ip" pair; the IP is context.
func domainIPParser(v string) (Target, error) {
	return hostPairParser("domain|ip", v, func(s string) error { _, err := parseIP(s); return err })
}

// hostPairParser hunts the host before the last "|" of a pair and checks
// the part after it; the whole value is kept as context.
func hostPairParser(form, v string, checkSecond func(string) error) (Target, error) {
	i := strings.LastIndexByte(v, '|')
	if i < 0 {
		return Target{}, Errorf(EINVALID, "expected %q, found no \"|\"", form)
	}
	if err := checkSecond(v[i+1:]); err != nil {
		return Target{}, err
	}
	t, err := domainParser(v[:i])
	if err != nil {
		return Target{}, err
	}
	t.Context = v
	return t, nil
}

// urlParser hunts the host part of a URL. A URL without a scheme
// ("evil.example/path") is read as http.
func urlParser(v string) (Target, error) {
	raw := strings.TrimSpace(v)
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return Target{}, Errorf(EINVALID, "%q is not a URL with a host", clip(v, 80))
	}
	t, err := domainParser(u.Hostname())
	if err != nil {
		return Target{}, err
	}
	t.Context = v
	return t, nil
}

// normaliseHost lower-cases a host name, converts unicode names to their
// ASCII (punycode) form and checks every label.
func normaliseHost(v string) (string, error) {
	h := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(v)), ".")
	h = strings.TrimPrefix(h, "*.")
	if h == "" {
		return "", Errorf(EINVALID, "host name is empty")
	}
	ascii, err := idna.Lookup.ToASCII(h)
	if err != nil {
		// Lookup rejects underscores, which real DNS names (SRV, DKIM) use.
		ascii, err = idna.Punycode.ToASCII(h)
		if err != nil {
			return "", Errorf(EINVALID, "%q is not a valid host name", clip(v, 80))
		}
	}
	if len(ascii) > 253 {
		return "", Errorf(EINVALID, "host name is longer than 253 characters")
	}
	labels := strings.Split(ascii, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", Errorf(EINVALID, "%q is not a valid host name", clip(v, 80))
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return "", Errorf(EINVALID, "%q is not a valid host name", clip(v, 80))
			}
		}
	}
	return ascii, nil
}

// fileNameParser accepts a bare file name (no directory part).
func fileNameParser(v string) (Target, error) {
	if strings.ContainsAny(v, `/\`) {
		return Target{}, Errorf(EINVALID, "a file name has no directory; use the file-path type for %q", clip(v, 80))
	}
	if v == "." || v == ".." {
		return Target{}, Errorf(EINVALID, "%q is not a file name", v)
	}
	if err := checkText(v); err != nil {
		return Target{}, err
	}
	return Target{Kind: KindFile, Value: v}, nil
}

// filePathParser accepts an absolute Windows or POSIX path.
func filePathParser(v string) (Target, error) {
	if err := checkText(v); err != nil {
		return Target{}, err
	}
	// UNC paths (\\host\share\..., //host/share/...) and device paths
	// (\\?\..., \\.\..., \??\...) are refused: stat() of a UNC path on
	// every Windows endpoint makes each of them connect to that host and
	// authenticate as itself (NTLM relay). Their file-name part can be
	// hunted with the filename type.
	norm := strings.ReplaceAll(v, "/", `\`)
	if strings.HasPrefix(norm, `\\`) || strings.HasPrefix(norm, `\??\`) {
		return Target{}, Errorf(EINVALID, "%q is a UNC or device path: hunting it would make every Windows endpoint connect to that host and authenticate as itself; hunt its file name with the filename type instead", clip(v, 80))
	}
	win := len(v) >= 3 && unicode.IsLetter(rune(v[0])) && v[1] == ':' && (v[2] == '\\' || v[2] == '/')
	if !win && !strings.HasPrefix(v, "/") {
		return Target{}, Errorf(EINVALID, "%q is not an absolute path", clip(v, 80))
	}
	if strings.HasSuffix(v, "/") || strings.HasSuffix(v, `\`) {
		return Target{}, Errorf(EINVALID, "%q names a directory, not a file", clip(v, 80))
	}
	return Target{Kind: KindFile, Value: v}, nil
}

// checkText refuses control characters, which no file name of interest holds
// and which would only confuse the analyst reading the tab.
func checkText(v string) error {
	for _, r := range v {
		if unicode.IsControl(r) {
			return Errorf(EINVALID, "value contains a control character (U+%04X)", r)
		}
	}
	return nil
}

// clip shortens s for an error message, cutting on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
