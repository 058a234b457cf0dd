#pragma once

// Test helpers for TLS: a temporary directory removed at the end, shell commands whose output
// is kept for the failure message, and a self-signed certificate for 127.0.0.1 made with the
// openssl CLI (Debian package openssl, installed by scripts/install-deps.sh).

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace test_support {

/// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/glmproxy-test-XXXXXX";
    if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  bool ok() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

/// Runs `command` with sh, its stdout and stderr into `log`. Returns the exit status.
inline int run_shell(const std::string& command, const std::string& log) {
  const std::string full = "(" + command + ") >'" + log + "' 2>&1";
  const int rc = std::system(full.c_str());
  return rc == -1 ? -1 : WEXITSTATUS(rc);
}

/// A self-signed certificate for IP 127.0.0.1 (subjectAltName) that is also its own CA
/// (basicConstraints CA:TRUE), so that it can be the only entry of GLMPROXY_CA_FILE, and a
/// hashed directory holding it for GLMPROXY_CA_PATH. Made once per test process.
struct TestCertificate {
  std::string cert_file;  ///< PEM certificate
  std::string key_file;   ///< PEM private key (P-256)
  std::string ca_dir;     ///< a directory with cert_file, hashed by `openssl rehash`
};

inline const TestCertificate& test_certificate() {
  static TempDir dir;
  static const TestCertificate cert = [] {
    REQUIRE(dir.ok());
    TestCertificate c{dir.file("cert.pem"), dir.file("key.pem"), dir.file("ca")};
    const std::string log = dir.file("openssl.log");
    const std::string make =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
        " -subj '/CN=glmproxy test 127.0.0.1' -addext 'subjectAltName=IP:127.0.0.1'"
        " -addext 'basicConstraints=critical,CA:TRUE' -keyout '" +
        c.key_file + "' -out '" + c.cert_file + "'";
    const int made = run_shell(make, log);
    INFO("openssl (Debian package openssl, scripts/install-deps.sh) failed:\n"
         << read_text_file(log));
    REQUIRE(made == 0);
    const int hashed = run_shell("mkdir -p '" + c.ca_dir + "' && cp '" + c.cert_file + "' '" +
                                     c.ca_dir + "/' && openssl rehash '" + c.ca_dir + "'",
                                 log);
    INFO(read_text_file(log));
    REQUIRE(hashed == 0);
    return c;
  }();
  return cert;
}

}  // namespace test_support
