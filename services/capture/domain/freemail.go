package domain

// freeMail lists common free-mail and consumer ISP domains. A lead whose
// e-mail is on one of them gets no organisation domain from its e-mail, and
// its profile says free_mail_domain = true (fit scoring counts it against).
var freeMail = map[string]bool{}

func init() {
	for _, d := range []string{
		"gmail.com", "googlemail.com",
		"yahoo.com", "yahoo.co.uk", "yahoo.de", "yahoo.fr", "yahoo.es", "yahoo.it", "yahoo.co.jp", "yahoo.com.br", "yahoo.co.in", "ymail.com", "rocketmail.com",
		"hotmail.com", "hotmail.co.uk", "hotmail.de", "hotmail.fr", "hotmail.it", "hotmail.es",
		"outlook.com", "outlook.de", "outlook.fr", "live.com", "live.co.uk", "live.de", "live.fr", "msn.com", "passport.com",
		"aol.com", "aim.com",
		"icloud.com", "me.com", "mac.com",
		"proton.me", "protonmail.com", "protonmail.ch", "pm.me",
		"tutanota.com", "tuta.io", "fastmail.com", "fastmail.fm", "hey.com", "zoho.com", "zohomail.com",
		"mail.com", "email.com", "gmx.com", "gmx.net", "gmx.de", "gmx.at", "gmx.ch", "web.de", "t-online.de", "freenet.de", "posteo.de", "mailbox.org",
		"yandex.ru", "yandex.com", "ya.ru", "mail.ru", "bk.ru", "inbox.ru", "list.ru", "rambler.ru",
		"qq.com", "163.com", "126.com", "sina.com", "sohu.com", "yeah.net", "foxmail.com",
		"naver.com", "daum.net", "hanmail.net",
		"orange.fr", "wanadoo.fr", "free.fr", "laposte.net", "sfr.fr",
		"libero.it", "virgilio.it", "tiscali.it", "alice.it",
		"btinternet.com", "sky.com", "virginmedia.com", "talktalk.net",
		"comcast.net", "verizon.net", "att.net", "sbcglobal.net", "cox.net", "charter.net", "earthlink.net",
		"bigpond.com", "optusnet.com.au", "shaw.ca", "rogers.com", "sympatico.ca",
		"seznam.cz", "wp.pl", "o2.pl", "onet.pl", "interia.pl",
		"rediffmail.com", "uol.com.br", "bol.com.br", "terra.com.br",
		"mailinator.com", "guerrillamail.com", "10minutemail.com",
	} {
		freeMail[d] = true
	}
}

// IsFreeMail reports whether d (a normalised domain) is a free-mail provider.
func IsFreeMail(d string) bool { return freeMail[d] }
