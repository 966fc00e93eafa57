// Package codecheck holds tests of the code itself: house rules that the
// compiler and the linters do not check. It has no code of its own.
package codecheck
