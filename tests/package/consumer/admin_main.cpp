// Built outside the tree against the installed package's admin component.
#include <glmproxy/admin/admin_server.hpp>
#include <glmproxy/glmproxy.hpp>

#include <cstdio>

int main() {
  glmproxy::Config config;
  config.admin.enabled = true;
  auto client = glmproxy::ProxyClient::create(config);
  if (!client) return 1;
  auto admin = glmproxy::admin::AdminServer::start(*client);
  if (!admin || admin->port() <= 0) return 2;
  std::printf("admin on %s ok\n", admin->url().c_str());
  return 0;
}
