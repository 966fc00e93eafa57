package mountopts_test

import (
	"fmt"

	"s3docs/mountopts"
)

// An fstab option string, as mount(8) hands it to mount.fuse.s3docs, becomes
// flags; what mount(8) and systemd consume is dropped.
func ExampleParseFstabOptions() {
	args, err := mountopts.ParseFstabOptions(
		"rw,_netdev,allow_other,endpoint_url=http://127.0.0.1:9000,cache_size=10GiB,cache_dir=/var/cache/s3docs,x-systemd.automount,nofail")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, a := range args {
		fmt.Println(a)
	}

	_, err = mountopts.ParseFstabOptions("cache_size=10XB")
	fmt.Println(err)
	// Output:
	// --allow-other
	// --endpoint-url=http://127.0.0.1:9000
	// --cache-size=10GiB
	// --cache-dir=/var/cache/s3docs
	// mount option cache_size: invalid size "10XB" (use e.g. 64MiB, 10GiB, 10G)
}
