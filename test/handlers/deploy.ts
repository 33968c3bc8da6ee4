/** The dashboard's test and screenshots show a deploy: it fails where `payload.fail` says, and a retry succeeds. */
export { handleTask } from './flaky';
