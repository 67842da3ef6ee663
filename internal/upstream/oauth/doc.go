// Package oauth holds the OAuth2 pieces the operator's API clients share (ThingSpace's client
// credentials grant, Verizon Cloud's authorization code and refresh grants): client Credentials
// sent as HTTP Basic and redacted in every rendering, the RFC 6749 error vocabulary and the
// classification of token-endpoint errors, and the checks of a token response's fields.
//
// The rule of package upstream holds here too: an error's message never carries a token, a
// secret or upstream free text. Only codes from the known vocabulary are read out of an error
// body; error_description is never even decoded.
package oauth
