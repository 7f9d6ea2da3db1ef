package ioc

import "sort"

// Kind is a family of indicators hunted with one artifact.
type Kind string

// The hunt kinds. Each has one artifact (templates/artifacts) that takes a
// list of hunt values and returns one row per match.
const (
	KindHash   Kind = "hash"   // md5, sha1 or sha256 of files and process images
	KindIP     Kind = "ip"     // IP address, optionally with a port
	KindDomain Kind = "domain" // host name (from domains, host names and URLs)
	KindFile   Kind = "file"   // file name or full path
)

// Kinds lists every hunt kind in a stable order.
var Kinds = []Kind{KindHash, KindIP, KindDomain, KindFile}

// Valid reports whether k is one of Kinds.
func (k Kind) Valid() bool {
	for _, v := range Kinds {
		if v == k {
			return true
		}
	}
	return false
}

// parser turns a raw IRIS value into a Target.
type parser func(value string) (Target, error)

// typeParsers maps IRIS IOC type names (case-sensitive, as seeded by IRIS 2.4)
// to the parser of their hunt kind. Types not listed are not huntable.
var typeParsers = map[string]parser{
	"md5":             hashParser("md5", 32),
	"sha1":            hashParser("sha1", 40),
	"sha256":          hashParser("sha256", 64),
	"filename|md5":    fileHashParser("md5", 32),
	"filename|sha1":   fileHashParser("sha1", 40),
	"filename|sha256": fileHashParser("sha256", 64),
	"malware-sample":  fileHashParser("md5", 32), // MISP convention: "name|md5"
	"ip-src":          ipParser(false),
	"ip-dst":          ipParser(false),
	"ip-any":          ipParser(false),
	"ip-src|port":     ipParser(true),
	"ip-dst|port":     ipParser(true),
	"domain":          domainParser,
	"hostname":        domainParser,
	"hostname|port":   hostPortParser,
	"domain|ip":       domainIPParser,
	"url":             urlParser,
	"link":            urlParser,
	"uri":             urlParser,
	"filename":        fileNameParser,
	"file-path":       filePathParser,
}

// HuntableTypes returns the IRIS IOC type names velohunt can hunt, sorted.
func HuntableTypes() []string {
	names := make([]string, 0, len(typeParsers))
	for name := range typeParsers {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
