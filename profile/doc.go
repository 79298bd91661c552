// Package profile loads, validates and queries product models: what a kind
// of device reports and what it accepts (PRF-1 … PRF-10).
//
// # Model
//
// A [Product] is identified by (manufacturerId, model) and lists
// [Service]s. A service is addressed by its serviceId; its serviceType may
// differ, and one serviceType may back several serviceIds (PRF-6). A
// service has [Property]s (what the device reports, each with an [Access]
// method of R, W and E letters) and [Command]s (what an application
// sends), whose [Para]s and [Response]s follow the same rules as
// properties. Every property and para has a [DataType]: int, decimal,
// string, DateTime (yyyyMMdd'T'HHmmss'Z', [ParseDateTime]) and
// jsonObject from Profile files, plus long, enum, boolean and string list
// from the newer JSON model (PRF-4, PRF-10).
//
// # Loading
//
// [LoadZip] reads a Profile zip as uploaded (an io.ReaderAt, its size and
// its file name); [LoadDir] reads the same tree from an fs.FS;
// [LoadModelJSON] reads the newer single-file model. All three return the
// same types. Loading either succeeds, with warnings (naming conventions,
// a wrapping folder, ignored files), or fails with a [*ValidationError]
// listing every problem at once (PRF-5). Each [Problem] carries a stable
// [Code], the file inside the archive, the line and column of the
// offending key or value, and a sentence saying what to do. Positions come
// from a small JSON tree built with encoding/json's Decoder.Token and
// InputOffset; syntax errors use the decoder's offset.
//
// Loaders refuse oversized input before it reaches memory ([Options],
// [*LimitError], [ErrTooLarge]): the zip's size; its entry count, counted
// from the central directory's fixed-size headers before archive/zip
// allocates an entry for each (65537 entries are refused having allocated
// under 1 MiB, TestZipEntryCountLying); each entry's declared uncompressed
// size and the sum of them. While decompressing, each entry is cut off one
// byte past the limit whatever its header claims, and archive/zip itself
// stops an entry at its declared size. A 64 MiB zip bomb is refused by its
// declared size having allocated under 4 MiB (TestZipBombDeclared).
//
// JSON documents (SEC-3): each file, and model.json, is at most
// Options.MaxEntrySize (1 MiB) and all files together MaxTotalSize
// (8 MiB); nesting is at most 64 levels. A *ValidationError lists the first
// [MaxProblems] (100) problems and counts the rest in More; warnings past
// 100 are summed up in one last warning (more-warnings). Validation work is
// linear in the input: line:column comes from an index of line starts and
// of character counts every 256 bytes, built once per file, so a problem
// costs a binary search and at most 256 bytes of counting, also in a
// one-line file; repeated-key detection uses a set. [LoadZipContext],
// [LoadDirContext] and [LoadModelJSONContext] stop when their context is
// done (the uploading client went away), asking it every 1,024 units of
// work (JSON values, list items, problems); TestLoadStopsWhenCancelled
// counts the questions to show nothing runs after the answer "done".
//
//	go test ./profile -run XXX -bench 'LoadProblems|LineCol' -benchtime 10x
//	(2 cores shared with other builds, AMD EPYC, Go 1.26, load average 2.3)
//	LoadModelJSON, ns/problem      100      1,000     10,000 problems
//	  one problem per line       4,368–7,259  4,810–6,440  4,804–5,057
//	  all on one line (minified) 3,597–3,828  4,387–4,644  4,772–4,798
//	locating n problems in a 1 MiB one-line file, ns/problem:
//	  index built once            11,263 (100)   813 (1,000)   154 (10,000)
//	  former rescan per problem  830,187 (100) 867,965 (1,000)
//
// Time per problem at 10,000 problems over that at 100, run by run: 0.70
// and 1.10 (one per line), 1.25 and 1.33 (one line): flat within the
// machine's noise; the
// former rescan cost 0.85 ms per problem in a 1 MiB file, 1,070 times the
// indexed lookup at 1,000 problems.
//
// # Checking data
//
// [Product.CheckReport] checks the values a device reported for a service
// (PRF-8): every name must be a property; every value must fit the
// dataType, min/max, step, maxLength and enumList.
// [Product.CheckFullReport] also requires every required property.
// [Product.CheckCommand] checks a command (PRF-9): service, method
// (commandName), a non-empty paras object (§7.1), each para, required
// paras. Values may be what encoding/json decodes (float64, string, bool,
// map[string]any, []any, nil, json.Number) or what a codec builds (Go
// integers of every size, float32, []byte or string holding a JSON
// object). A failure is a [*CheckError] whose [Mismatch]es name the
// property and the [Rule] broken.
//
// Codecs check their field mappings with [Product.PropertyType],
// [Product.ParaType] and [Product.ResponseParaType], or with
// [Product.Service], [Service.Property], [Service.Command] and
// [Command.Para].
//
// # LwM2M resource mapping
//
// A product whose devices are standard LwM2M clients (no object 19, no
// codec) describes them with a mapping file uploaded with the product, as
// a codec is (LWM-12). The Profile stays as it is (the same Profile can
// serve a codec product and a mapped one); the mapping says which
// resource holds each property and what each command becomes:
//
//	{
//	  "properties": [
//	    {"serviceId": "Temperature", "property": "temperature", "resource": "/3303/0/5700"},
//	    {"serviceId": "Temperature", "property": "units", "resource": "/3303/0/5701", "observe": false},
//	    {"serviceId": "Vendor", "property": "level", "resource": "/26241/0/1", "type": "Integer"}
//	  ],
//	  "commands": [
//	    {"serviceId": "Temperature", "command": "RESET_MIN_MAX", "execute": "/3303/0/5605"},
//	    {"serviceId": "Temperature", "command": "SET_APPLICATION_TYPE", "write": {"applicationType": "/3303/0/5750"}}
//	  ]
//	}
//
// A property maps to a resource (/object/instance/resource) or a resource
// instance (…/instance); "observe" (default true) says whether the
// platform observes it when a device registers, else it reads it once
// then. A command is either an "execute" of a resource, whose arguments
// may come from one string para named in "args", or a "write" of each
// para to a resource of one object instance (one request: a Write of the
// resource for one para, a partial update of the instance for several);
// {"resource": …, "type": …} stands for the path where the object model
// does not know the resource. [LoadMapping] checks the file against the
// product and an [ObjectModel] and lists every problem with its line and
// column: unknown serviceId, property, command or para; path syntax (3 or
// 4 ids, 0 to 65534); a resource the model does not know and no "type";
// an LwM2M type that cannot hold the dataType (String holds string and
// enum; Integer and Unsigned Integer int, long and decimal; Float
// decimal; Boolean boolean and int; Time DateTime, long and int; Opaque,
// Objlnk and Corelnk string); a resource that cannot be read (a
// property), written (a para) or executed; a path or property mapped
// twice; a para written nowhere, since a value must not be lost.
//
// # Catalog
//
// [Catalog] holds products keyed by (manufacturerId, model) (PRF-7). Add
// fails with [ErrExists]; Replace and Delete fail with a [*LockedError]
// ([ErrLocked]) naming the device count while a [DeviceCounter] reports
// devices registered against the product. [Catalog.Exists] satisfies the
// registry's Products interface. [Catalog.AddWithCodec] and
// [Catalog.Codec] keep a product's codec with it (§8.9).
//
// # Concurrency
//
// Loaders are pure functions. A loaded Product is immutable and safe to
// share; checking is read-only. Catalog is safe for concurrent use. The
// device count is read under the catalog's lock, but a device registered
// at that very moment is not seen: the platform should register devices
// only for products that exist, and delete products only through the
// catalog.
//
// # Decisions where the spec was silent
//
//   - min and max may be numbers or numeric strings (real files hold
//     both); maxLength and step likewise. A max of 0 below min means "no
//     upper bound"; 0/0 means unbounded for strings and DateTime, and for
//     strings other bounds limit the length in characters. For numbers
//     0/0 is taken literally.
//   - maxLength 0 or null means no limit. step 0 means no grid; otherwise
//     a number must be min (or 0) plus a whole multiple of step, within
//     1e-9 relative.
//   - maxLength applies to strings (in characters) and to each element of a
//     string list, not to jsonObject values.
//   - int accepts booleans as 0 and 1 (PRF-4: int holds booleans). Large
//     integers are compared as float64, exact up to 2^53.
//   - A servicetype file is found under service/<serviceId>/, or else
//     under service/<serviceType>/ so that one file can back several
//     serviceIds (PRF-6). A file under no listed serviceId or serviceType
//     is the "not listed" problem.
//   - `properties: null` is a not-array problem; `commands: null` is not
//     (PRF-5 exempts only commands).
//   - Method letters may come in any order but each only once.
//   - Names containing '.', '/' or '$' are refused: they end up as JSON
//     keys of shadows and histories and in REST paths.
//   - For a command that defines no paras, any non-empty paras object is
//     accepted and its names are not checked (§7.1 demands one).
//   - Hidden files also include desktop.ini; entries that are not part of
//     a profile (a README) are warnings, not problems.
//   - The newer model (PRF-10) uses manufacturer_id and model when present,
//     else manufacturer_name and product_id; device_type may be spelled
//     product_type; service_type defaults to service_id.
//   - The catalog is in memory. To keep products across restarts, a
//     platform stores the uploaded zip, or the normalized model: a Product
//     marshals to JSON and reads back unchanged
//     (TestNormalizedModelRoundTrip).
//   - A product that ships a codec (§8.9) is added with
//     [Catalog.AddWithCodec]: the catalog keeps the codec document's bytes
//     next to the product and adds, replaces and deletes both as one; it
//     does not read them (package codec does).
//
// # Figures
//
// Measured on 2 cores, AMD EPYC (Go reports "Oxide Virtual Turin-like
// Processor"), Go 1.26, while seven other engineers' builds kept the load
// average between 12 and 15. Wall time (ns/op) then partly measures
// waiting for a core, so the check benchmarks also report process CPU
// time per operation (cpu-ns/op). A fitting 5-property Connectivity
// report, values as encoding/json decodes them:
//
//	go test -run XXX -bench 'CheckReport$|Naive' -benchtime 500ms -count 6 -cpu 1
//	BenchmarkCheckReport                137-190 ns/op    102-107 cpu-ns/op     0 B/op   0 allocs/op
//	BenchmarkCheckReportBaselineNaive  7.0-16.6 µs/op   6.1-10.2 µs cpu/op  2688 B/op  48 allocs/op
//
//	go test -run XXX -bench 'CheckReport$|Naive' -benchtime 1s -count 3   (GOMAXPROCS 2)
//	BenchmarkCheckReport                463-1134 ns/op   210-227 cpu-ns/op     0 B/op   0 allocs/op
//	BenchmarkCheckReportBaselineNaive   13-22 µs/op      11.6-13.3 µs cpu/op 2688 B/op  48 allocs/op
//
// CheckReport meets the target (≤ 300 ns, ≤ 1 allocation) on one core,
// using about 80 times less CPU than the naive baseline (57 to 99 times
// across the runs above; 51 to 63 times with GOMAXPROCS 2), which builds
// a name map per report and does a JSON round trip per value. It allocates nothing when the data
// fits (TestCheckReportAllocs asserts 0); a mismatch costs about 10
// allocations to describe. With GOMAXPROCS 2 on this crowded machine the
// idle processor's spinning adds CPU time, and wall time is dominated by
// waiting.
package profile
