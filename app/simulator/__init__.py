"""A stand-in for WeChat's servers, for tests and demos (`flask wechat ...`)."""

#: What `flask serve` uses when no WeChat account is configured (demo mode).
DEMO_WECHAT = {
    "WECHAT_TOKEN": "demotoken",
    "WECHAT_APP_ID": "wxdemo0000000000",
    "WECHAT_APP_SECRET": "demosecret",
}
DEMO_SIMULATOR_PORT = 9100
