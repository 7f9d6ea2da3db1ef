package ioc_test

import (
	"strings"
	"testing"

	"github.com/velohunt/velohunt/internal/ioc"
)

func TestParse(t *testing.T) {
	md5 := "D41D8CD98F00B204E9800998ECF8427E"
	sha256 := strings.Repeat("ab", 32)
	tests := []struct {
		name, typ, value string
		kind             ioc.Kind
		want             string // hunt value, or "" when an error is expected
		errHas           string
	}{
		{"MD5Upper", "md5", "  " + md5 + "\n", ioc.KindHash, strings.ToLower(md5), ""},
		{"SHA1", "sha1", strings.Repeat("0", 40), ioc.KindHash, strings.Repeat("0", 40), ""},
		{"SHA256", "sha256", sha256, ioc.KindHash, sha256, ""},
		{"ErrMD5Length", "md5", "abc", "", "", "32 hex digits"},
		{"ErrMD5NotHex", "md5", strings.Repeat("z", 32), "", "", "hexadecimal"},
		{"ErrMD5Injection", "md5", "'); SELECT * FROM info() --", "", "", "32 hex digits"},
		{"FilenameSHA256", "filename|sha256", "evil tool.exe|" + strings.ToUpper(sha256), ioc.KindHash, sha256, ""},
		{"FilenamePipeInName", "filename|md5", "a|b.exe|" + md5, ioc.KindHash, strings.ToLower(md5), ""},
		{"ErrFilenameMD5NoPipe", "filename|md5", md5, "", "", "no \"|\""},
		{"ErrFilenameMD5EmptyName", "filename|md5", "|" + md5, "", "", "empty"},
		{"IPv4", "ip-dst", " 203.0.113.9 ", ioc.KindIP, "203.0.113.9", ""},
		{"IPv6", "ip-src", "2001:DB8::1", ioc.KindIP, "2001:db8::1", ""},
		{"IPv4Mapped", "ip-any", "::ffff:198.51.100.7", ioc.KindIP, "198.51.100.7", ""},
		{"IPPort", "ip-dst|port", "203.0.113.9|443", ioc.KindIP, "203.0.113.9|443", ""},
		{"IPv6Port", "ip-src|port", "[2001:db8::1]|8080", ioc.KindIP, "2001:db8::1|8080", ""},
		{"ErrIP", "ip-dst", "203.0.113.999", "", "", "not an IP"},
		{"ErrIPZone", "ip-dst", "fe80::1%eth0", "", "", "not an IP"},
		{"ErrPort", "ip-dst|port", "203.0.113.9|70000", "", "", "port"},
		{"Domain", "domain", "Evil.Example.", ioc.KindDomain, "evil.example", ""},
		{"DomainUnicode", "domain", "bücher.example", ioc.KindDomain, "xn--bcher-kva.example", ""},
		{"DomainUnderscore", "hostname", "_dmarc.evil.example", ioc.KindDomain, "_dmarc.evil.example", ""},
		{"DomainIsIP", "domain", "192.0.2.1", ioc.KindIP, "192.0.2.1", ""},
		{"ErrDomainSpace", "domain", "evil example.com", "", "", "not a valid host"},
		{"ErrDomainQuote", "domain", "a'b.example", "", "", "not a valid host"},
		{"HostnamePort", "hostname|port", "c2.example|8443", ioc.KindDomain, "c2.example", ""},
		{"DomainIP", "domain|ip", "c2.example|192.0.2.1", ioc.KindDomain, "c2.example", ""},
		{"URL", "url", "https://User@Evil.Example:8443/a?b=c", ioc.KindDomain, "evil.example", ""},
		{"URLNoScheme", "url", "evil.example/payload.bin", ioc.KindDomain, "evil.example", ""},
		{"URLIP", "url", "http://198.51.100.7/x", ioc.KindIP, "198.51.100.7", ""},
		{"ErrURL", "url", "http://", "", "", "not a URL"},
		{"Filename", "filename", "invoice.pdf.exe", ioc.KindFile, "invoice.pdf.exe", ""},
		{"FilenameQuotes", "filename", `it's "x".exe`, ioc.KindFile, `it's "x".exe`, ""},
		{"ErrFilenameSlash", "filename", "a/b.exe", "", "", "file-path"},
		{"ErrFilenameNewline", "filename", "a\nb.exe", "", "", "control character"},
		{"PathWindows", "file-path", `C:\Users\Public\a.exe`, ioc.KindFile, `C:\Users\Public\a.exe`, ""},
		{"PathPOSIX", "file-path", "/tmp/.x/implant", ioc.KindFile, "/tmp/.x/implant", ""},
		{"ErrPathRelative", "file-path", "tmp/implant", "", "", "absolute"},
		{"ErrPathDir", "file-path", "/tmp/", "", "", "directory"},
		{"ErrPathUNC", "file-path", `\\10.1.2.3\c$\temp\x.exe`, "", "", "UNC or device path"},
		{"ErrPathUNCForwardSlashes", "file-path", "//10.1.2.3/c$/temp/x.exe", "", "", "UNC or device path"},
		{"ErrPathUNCHostName", "file-path", `\\fileserver.corp\share\x.exe`, "", "", "UNC or device path"},
		{"ErrPathDeviceLong", "file-path", `\\?\C:\temp\x.exe`, "", "", "UNC or device path"},
		{"ErrPathDeviceLongUNC", "file-path", `\\?\UNC\10.1.2.3\c$\x.exe`, "", "", "UNC or device path"},
		{"ErrPathDevice", "file-path", `\\.\PhysicalDrive0`, "", "", "UNC or device path"},
		{"ErrPathNTObject", "file-path", `\??\C:\x.exe`, "", "", "UNC or device path"},
		{"ErrUnsupportedType", "sha512", strings.Repeat("a", 128), "", "", "not huntable"},
		{"ErrUnknownType", "nonsense", "x", "", "", "not huntable"},
		{"ErrEmpty", "md5", "   ", "", "", "empty"},
		{"ErrHuge", "filename", strings.Repeat("a", 1<<20), "", "", "limit"},
		{"ErrBadUTF8", "filename", "a\xffb", "", "", "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ioc.Parse(tt.typ, tt.value)
			if tt.errHas != "" {
				if err == nil {
					t.Fatalf("Parse(%q, %q) = %+v, want error containing %q", tt.typ, tt.value, got, tt.errHas)
				}
				if code := ioc.ErrorCode(err); code != ioc.EINVALID {
					t.Fatalf("code=%q, want %q", code, ioc.EINVALID)
				}
				if msg := ioc.ErrorMessage(err); !strings.Contains(msg, tt.errHas) {
					t.Fatalf("message=%q, want it to contain %q", msg, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q, %q): %v", tt.typ, tt.value, err)
			}
			if got.Kind != tt.kind || got.Value != tt.want {
				t.Fatalf("Parse(%q, %q) = %v %q, want %v %q", tt.typ, tt.value, got.Kind, got.Value, tt.kind, tt.want)
			}
		})
	}
}

func TestErrorMessageHidesInternalErrors(t *testing.T) {
	if got := ioc.ErrorMessage(strings.NewReader("").UnreadByte()); got != "internal error" {
		t.Fatalf("ErrorMessage=%q", got)
	}
	if got := ioc.ErrorCode(nil); got != "" {
		t.Fatalf("ErrorCode(nil)=%q", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"d41d8cd98f00b204e9800998ecf8427e", "'); SELECT 1 --", "a|b", "http://x", "\x00", "ü.example"} {
		f.Add("md5", s)
		f.Add("url", s)
		f.Add("filename|sha1", s)
	}
	f.Fuzz(func(t *testing.T, typ, value string) {
		got, err := ioc.Parse(typ, value)
		if err != nil {
			if ioc.ErrorCode(err) != ioc.EINVALID {
				t.Fatalf("error code %q", ioc.ErrorCode(err))
			}
			return
		}
		if got.Value == "" || !got.Kind.Valid() || len(got.Value) > ioc.MaxValueLen*4 {
			t.Fatalf("bad target %+v", got)
		}
	})
}
