package iristest

// iocTypeNames are the 160 IOC types a fresh IRIS 2.4 seeds, in id order
// (contracts/iris-api.md §2). Ids are 1-based positions.
var iocTypeNames = []string{
	"AS", "aba-rtn", "account", "anonymised", "attachment", "authentihash", "boolean", "btc", "campaign-id",
	"campaign-name", "cdhash", "chrome-extension-id", "community-id", "cookie", "dash", "datetime", "dkim",
	"dkim-signature", "dns-soa-email", "domain", "domain|ip", "email", "email-attachment", "email-body",
	"email-dst", "email-dst-display-name", "email-header", "email-message-id", "email-mime-boundary",
	"email-reply-to", "email-src", "email-src-display-name", "email-subject", "email-thread-index",
	"email-x-mailer", "favicon-mmh3", "filename", "filename-pattern", "filename|authentihash",
	"filename|impfuzzy", "filename|imphash", "filename|md5", "filename|pehash", "filename|sha1",
	"filename|sha224", "filename|sha256", "filename|sha3-224", "filename|sha3-256", "filename|sha3-384",
	"filename|sha3-512", "filename|sha384", "filename|sha512", "filename|sha512/224", "filename|sha512/256",
	"filename|ssdeep", "filename|tlsh", "filename|vhash", "first-name", "float", "full-name", "gene",
	"git-commit-id", "github-organisation", "github-repository", "github-username", "hassh-md5",
	"hasshserver-md5", "hex", "hostname", "hostname|port", "http-method", "iban", "identity-card-number",
	"impfuzzy", "imphash", "ip-any", "ip-dst", "ip-dst|port", "ip-src", "ip-src|port",
	"ja3-fingerprint-md5", "jabber-id", "jarm-fingerprint", "kusto-query", "link", "mac-address",
	"mac-eui-64", "malware-sample", "malware-type", "md5", "middle-name", "mime-type",
	"mobile-application-id", "mutex", "named pipe", "other", "file-path", "pattern-in-file",
	"pattern-in-memory", "pattern-in-traffic", "pdb", "pehash", "pgp-private-key", "pgp-public-key",
	"phone-number", "port", "process-state", "prtn", "regkey", "regkey|value", "sha1", "sha224",
	"sha256", "sha3-224", "sha3-256", "sha3-384", "sha3-512", "sha384", "sha512", "sha512/224",
	"sha512/256", "sigma", "size-in-bytes", "snort", "ssdeep", "ssh-fingerprint", "stix2-pattern",
	"target-email", "target-external", "target-location", "target-machine", "target-org", "target-user",
	"telfhash", "text", "threat-actor", "tlsh", "travel-details", "twitter-id", "uri", "url",
	"user-agent", "vhash", "vulnerability", "weakness", "whois-creation-date", "whois-registrant-email",
	"whois-registrant-name", "whois-registrant-org", "whois-registrant-phone", "whois-registrar",
	"windows-scheduled-task", "windows-service-displayname", "windows-service-name",
	"x509-fingerprint-md5", "x509-fingerprint-sha1", "x509-fingerprint-sha256", "xmr", "yara", "zeek",
}

var assetTypeNames = []string{"Account", "Firewall", "Linux - Server", "Linux - Computer", "Linux Account",
	"Mac - Computer", "Phone - Android", "Phone - IOS", "Windows - Computer", "Windows - Server", "Windows - DC",
	"Router", "Switch", "VPN", "WAF", "Windows Account - Local", "Windows Account - Local - Admin",
	"Windows Account - AD", "Windows Account - AD - Admin", "Windows Account - AD - krbtgt",
	"Windows Account - AD - Service"}

var analysisStatusNames = []string{"Unspecified", "To be done", "Started", "Pending", "Canceled", "Done"}

var eventCategoryNames = []string{"Unspecified", "Legitimate", "Remediation", "Initial Access", "Execution",
	"Persistence", "Privilege Escalation", "Defense Evasion", "Credential Access", "Discovery",
	"Lateral Movement", "Collection", "Command and Control", "Exfiltration", "Impact"}

var tlpNames = []string{"red", "amber", "green", "clear", "amber+strict"}

// TypeID returns the seeded id of an IOC type name, or 0.
func TypeID(name string) int64 {
	for i, n := range iocTypeNames {
		if n == name {
			return int64(i + 1)
		}
	}
	return 0
}
