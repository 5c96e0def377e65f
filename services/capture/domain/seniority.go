package domain

import (
	"strings"
	"unicode"

	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
)

// seniorityRules are checked in order; the first rule with a matching word
// wins, so "Vice President" is a VP (not a C-level "president") and
// "Head of Sales" a director.
var seniorityRules = []struct {
	level leadv1.Seniority
	words []string
	// unless: the rule does not fire when one of these words is present.
	unless []string
}{
	{leadv1.Seniority_SENIORITY_OWNER, []string{"owner", "founder", "cofounder", "proprietor", "inhaber"}, nil},
	{leadv1.Seniority_SENIORITY_VICE_PRESIDENT, []string{"vp", "svp", "evp", "avp", "vice"}, nil},
	{leadv1.Seniority_SENIORITY_C_LEVEL, []string{"ceo", "cto", "cfo", "coo", "cmo", "cio", "ciso", "cro", "cpo", "cdo", "chief", "president", "geschäftsführer", "md"}, []string{"assistant"}},
	{leadv1.Seniority_SENIORITY_DIRECTOR, []string{"director", "head", "directeur", "leiter"}, []string{"assistant"}},
	{leadv1.Seniority_SENIORITY_MANAGER, []string{"manager", "lead", "leader", "teamlead", "supervisor", "foreman"}, nil},
	{leadv1.Seniority_SENIORITY_ENTRY, []string{"intern", "trainee", "junior", "jr", "apprentice", "student", "graduate", "assistant", "werkstudent"}, nil},
	{leadv1.Seniority_SENIORITY_INDIVIDUAL_CONTRIBUTOR, []string{"engineer", "developer", "analyst", "specialist", "consultant", "designer", "architect", "scientist", "administrator", "admin", "representative", "rep", "associate", "coordinator", "accountant", "programmer", "researcher", "writer", "marketer", "executive", "senior", "sr", "staff", "principal", "technician", "officer"}, nil},
}

// SeniorityFromTitle derives the seniority of a job title ("VP Engineering"
// → VICE_PRESIDENT); UNSPECIFIED when no rule matches.
func SeniorityFromTitle(title string) leadv1.Seniority {
	words := map[string]bool{}
	for _, w := range strings.FieldsFunc(strings.ToLower(title), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		words[w] = true
	}
	// "managing director" is the chief executive in UK/DE usage.
	if words["managing"] && words["director"] {
		return leadv1.Seniority_SENIORITY_C_LEVEL
	}
	if words["co"] && words["founder"] {
		return leadv1.Seniority_SENIORITY_OWNER
	}
	for _, r := range seniorityRules {
		blocked := false
		for _, u := range r.unless {
			blocked = blocked || words[u]
		}
		if blocked {
			continue
		}
		for _, w := range r.words {
			if words[w] {
				return r.level
			}
		}
	}
	return leadv1.Seniority_SENIORITY_UNSPECIFIED
}
