// The formats package is an API compatibility wrapper which merely calls into github.com/containers/common/pkg/formats.  Newer code should instead call that package directly.
package formats
